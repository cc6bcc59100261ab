"use client";
import { useState } from "react";

export default function Cards({ plans }) {
  const [yearly, setYearly] = useState(false);
  return (
    <>
      <button onClick={() => setYearly((y) => !y)}>{yearly ? "Yearly" : "Monthly"}</button>
      <div className="plan-grid">
        {plans.map((plan) => (
          <article className="plan-card" key={plan.name}>
            <h2>{plan.name}</h2>
            <p className="price">${(yearly ? plan.yearly : plan.monthly) / 100}</p>
            <ul>
              <li>Feature one</li>
              <li>Feature two</li>
              <li>Feature three</li>
            </ul>
            <button>Choose</button>
          </article>
        ))}
      </div>
    </>
  );
}
