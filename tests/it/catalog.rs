//! The catalog diff applied to the Stripe emulator, through the real gateway and the CLI.

use billing_starter::{
    catalog::{diff, load::parse, Catalog, Interval},
    config::Config,
    gateway::StripeGateway,
};

async fn emulator() -> stripe_emulator::Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    stripe_emulator::start(listener, Default::default())
        .await
        .unwrap()
}

fn config_for(base_url: &str) -> Config {
    Config::from_vars([
        ("STRIPE_SECRET_KEY".to_owned(), "sk_test_catalog".to_owned()),
        ("STRIPE_API_BASE".to_owned(), base_url.to_owned()),
    ])
    .unwrap()
}

fn example() -> Catalog {
    parse(include_str!("../../plans.toml")).unwrap()
}

#[tokio::test]
async fn apply_on_an_empty_account_then_plan_shows_no_drift() {
    let emulator = emulator().await;
    let stripe = StripeGateway::from_config(&config_for(&emulator.base_url)).unwrap();
    let catalog = example();

    let changes = diff::plan(&catalog, &stripe.remote_catalog(&catalog).await.unwrap());
    assert_eq!(changes.len(), 8, "{changes:?}");
    stripe.apply_catalog(&changes).await.unwrap();
    assert_eq!(
        diff::plan(&catalog, &stripe.remote_catalog(&catalog).await.unwrap()),
        []
    );

    let prices = stripe.resolve_prices(&catalog).await.unwrap();
    let monthly = prices.get("premium_monthly").expect("resolved");
    assert_eq!(
        (monthly.plan_id.as_str(), monthly.interval),
        ("premium", Interval::Month)
    );
    assert!(monthly.price_id.starts_with("price_"));
    assert!(prices.get("standard_pack").is_some() && prices.get("premium_yearly").is_some());
    assert_eq!(prices.by_price_id(&monthly.price_id), Some(monthly));

    // Applying the same changes again (a crashed run retried) creates nothing new:
    // the idempotency keys replay the first responses.
    stripe.apply_catalog(&changes).await.unwrap();
    let remote = stripe.remote_catalog(&catalog).await.unwrap();
    assert_eq!((remote.products.len(), remote.prices.len()), (3, 5));
    emulator.stop().await;
}

#[tokio::test]
async fn an_amount_change_creates_a_new_price_moves_the_key_and_archives_the_old() {
    let emulator = emulator().await;
    let stripe = StripeGateway::from_config(&config_for(&emulator.base_url)).unwrap();
    let catalog = example();
    stripe
        .apply_catalog(&diff::plan(&catalog, &Default::default()))
        .await
        .unwrap();
    let before = stripe.resolve_prices(&catalog).await.unwrap();

    let mut raised = catalog.clone();
    raised.plans[2].prices[0].amount = 5900;
    let changes = diff::plan(&raised, &stripe.remote_catalog(&raised).await.unwrap());
    let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(
        text[0]
            .starts_with("+ price `premium_monthly`: 5900 usd Month (takes over the lookup key)"),
        "{text:?}"
    );
    assert!(
        text[1].contains("replaced (prices are immutable)"),
        "{text:?}"
    );
    stripe.apply_catalog(&changes).await.unwrap();

    let after = stripe.resolve_prices(&raised).await.unwrap();
    let old_id = &before.get("premium_monthly").unwrap().price_id;
    let new_id = &after.get("premium_monthly").unwrap().price_id;
    assert_ne!(old_id, new_id, "the lookup key moved to a new price");
    let remote = stripe.remote_catalog(&raised).await.unwrap();
    let old = remote.prices.iter().find(|p| &p.id == old_id).unwrap();
    assert!(
        !old.active && old.lookup_key.is_none(),
        "old price archived without the key: {old:?}"
    );
    assert_eq!(diff::plan(&raised, &remote), []);

    // Back and forth (4900 → 5900 → 4900 → 5900 → 4900): each is a change of
    // its own, never mistaken for an earlier one under the same idempotency key.
    let mut seen = vec![old_id.clone(), new_id.clone()];
    for amount in [4900, 5900, 4900] {
        let mut next = catalog.clone();
        next.plans[2].prices[0].amount = amount;
        let changes = diff::plan(&next, &stripe.remote_catalog(&next).await.unwrap());
        stripe
            .apply_catalog(&changes)
            .await
            .unwrap_or_else(|err| panic!("back to {amount}: {err}"));
        let resolved = stripe.resolve_prices(&next).await.unwrap();
        let price = resolved.get("premium_monthly").unwrap();
        let remote = stripe.remote_catalog(&next).await.unwrap();
        let stored = remote
            .prices
            .iter()
            .find(|p| p.id == price.price_id)
            .unwrap();
        assert_eq!(stored.amount, Some(amount));
        assert!(!seen.contains(&price.price_id), "a new price each time");
        seen.push(price.price_id.clone());
        assert_eq!(diff::plan(&next, &remote), []);
    }
    emulator.stop().await;
}

/// The binary against `base_url` with `catalog`, on a database of its own.
async fn cli(base_url: &str, catalog: &std::path::Path, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/cli.db?mode=rwc", dir.path().display());
    let catalog = catalog.display().to_string();
    crate::common::run_binary(
        args,
        &[
            ("STRIPE_SECRET_KEY", "sk_test_cli"),
            ("STRIPE_API_BASE", base_url),
            ("CATALOG_PATH", &catalog),
            ("DATABASE_URL", &database),
        ],
    )
    .await
}

#[tokio::test]
async fn the_cli_plans_applies_and_checks_for_drift() {
    let emulator = emulator().await;
    let catalog = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans.toml");

    let (code, out) = cli(
        &emulator.base_url,
        &catalog,
        &["catalog", "apply", "--check"],
    )
    .await;
    assert_eq!(code, 1, "drift on an empty account: {out}");
    assert!(out.contains("+ product for plan `premium`"), "{out}");

    let (code, out) = cli(&emulator.base_url, &catalog, &["catalog", "plan"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("8 change(s)"), "{out}");

    let (code, out) = cli(&emulator.base_url, &catalog, &["catalog", "apply"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Stripe now matches the catalog"), "{out}");
    // The portal's configuration is made with the catalog, not at the first click.
    assert!(out.contains("portal configuration bpc_"), "{out}");
    let configs: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}v1/billing_portal/configurations",
            emulator.base_url
        ))
        .bearer_auth("sk_test_cli")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(configs["data"].as_array().unwrap().len(), 1, "{configs}");
    assert_eq!(configs["data"][0]["active"], true);
    // Applying again finds it: still one.
    let (code, out) = cli(&emulator.base_url, &catalog, &["catalog", "apply"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("portal configuration bpc_"), "{out}");

    let (code, out) = cli(
        &emulator.base_url,
        &catalog,
        &["catalog", "apply", "--check"],
    )
    .await;
    assert_eq!(code, 0, "no drift after apply: {out}");

    let broken = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        broken.path(),
        "[[plans]]\nid = \"p\"\nname = \"P\"\nbilling = \"subscription\"\n",
    )
    .unwrap();
    let (code, out) = cli(&emulator.base_url, broken.path(), &["catalog", "plan"]).await;
    assert_ne!(code, 0);
    assert!(
        out.contains("plan `p`, prices: a subscription needs a monthly price"),
        "{out}"
    );
    emulator.stop().await;
}
