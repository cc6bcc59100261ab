//! Reading `plans.toml`.

use std::path::Path;

use super::{validate, Catalog};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the catalog file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the catalog file is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("the catalog has {} error(s):\n  {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid(Vec<validate::Problem>),
}

/// Parses catalog TOML without validating it.
pub fn parse(text: &str) -> Result<Catalog, toml::de::Error> {
    toml::from_str(text)
}

/// Reads, parses and validates the catalog; warnings are logged, errors returned.
pub fn load(path: &Path) -> Result<Catalog, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let catalog = parse(&text)?;
    let report = validate::validate(&catalog);
    for warning in &report.warnings {
        tracing::warn!("catalog: {warning}");
    }
    if report.errors.is_empty() {
        Ok(catalog)
    } else {
        Err(LoadError::Invalid(report.errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_bad_limits_are_parse_errors() {
        assert!(
            parse("[[plans]]\nid = \"a\"\nname = \"A\"\nbilling = \"free\"\npopluar = true\n")
                .is_err()
        );
        assert!(parse("[[plans]]\nid = \"a\"\nname = \"A\"\nbilling = \"free\"\nlimits = { seats = \"lots\" }\n").is_err());
        let ok = parse("[[plans]]\nid = \"a\"\nname = \"A\"\nbilling = \"free\"\nlimits = { seats = \"unlimited\", projects = 3 }\n").unwrap();
        assert_eq!(
            ok.plans[0].limits["seats"],
            crate::catalog::Limit::Unlimited
        );
        assert_eq!(
            ok.plans[0].limits["projects"],
            crate::catalog::Limit::Count(3)
        );
    }

    #[test]
    fn load_reports_every_error_with_its_plan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.toml");
        std::fs::write(
            &path,
            "[[plans]]\nid = \"x\"\nname = \"\"\nbilling = \"subscription\"\n",
        )
        .unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("plan `x`, name: a plan needs a display name"),
            "{err}"
        );
        assert!(
            err.contains("plan `x`, prices: a subscription needs a monthly price"),
            "{err}"
        );
        assert!(load(&dir.path().join("missing.toml"))
            .unwrap_err()
            .to_string()
            .starts_with("cannot read the catalog file"));
    }
}
