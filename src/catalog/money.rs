//! Money as people read it: minor units per ISO 4217 (two for USD, none for JPY,
//! three for KWD), a currency symbol that is not ambiguous, thousands separators.

use iso_currency::Currency;

/// The ISO currency for a Stripe currency code (`"usd"`), if it is one.
pub fn currency(code: &str) -> Option<Currency> {
    Currency::from_code(&code.to_ascii_uppercase())
}

/// Digits after the decimal point for `code` (Stripe's "zero-decimal" currencies have 0).
pub fn minor_digits(code: &str) -> Option<u32> {
    currency(code).map(|c| u32::from(c.exponent().unwrap_or(0)))
}

/// `$49`, `$40.83`, `€1,234.50`, `¥500`, `CA$12`. Whole amounts drop their `.00`
/// when `trim_whole` is set (for headline prices).
pub fn format(amount: i64, code: &str, trim_whole: bool) -> String {
    let upper = code.to_ascii_uppercase();
    let digits = minor_digits(code).unwrap_or(2);
    let scale = 10_i64.pow(digits);
    let (whole, fraction) = (amount.abs() / scale, amount.abs() % scale);
    let mut text = group_thousands(whole);
    if digits > 0 && !(trim_whole && fraction == 0) {
        text.push('.');
        text.push_str(&format!("{fraction:0width$}", width = digits as usize));
    }
    let sign = if amount < 0 { "-" } else { "" };
    format!("{sign}{}{text}", symbol(&upper))
}

fn symbol(upper: &str) -> String {
    let native = currency(upper)
        .map(|c| c.symbol().symbol)
        .unwrap_or_default();
    match (upper, native.as_str()) {
        ("USD", _) => "$".to_owned(),
        ("JPY", _) => "¥".to_owned(),
        // Dollars and yuan share glyphs with USD and JPY: say which one.
        (code, "$") => format!("{}$", &code[..2]),
        ("CNY", _) => "CN¥".to_owned(),
        (_, symbol) if !symbol.is_empty() && symbol != "¤" && symbol.chars().count() <= 2 => {
            symbol.to_owned()
        }
        (code, _) => format!("{code} "),
    }
}

fn group_thousands(value: i64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_per_currency_minor_units() {
        let cases = [
            (4900, "usd", true, "$49"),
            (4083, "usd", true, "$40.83"),
            (4900, "usd", false, "$49.00"),
            (123_450, "eur", false, "€1,234.50"),
            (500, "jpy", true, "¥500"),
            (500, "jpy", false, "¥500"),
            (1200, "cad", true, "CA$12"),
            (12_345, "kwd", false, "KWD 12.345"),
            (999, "gbp", false, "£9.99"),
            (-1500, "usd", false, "-$15.00"),
            (100_000_000, "usd", true, "$1,000,000"),
        ];
        for (amount, code, trim, expected) in cases {
            assert_eq!(format(amount, code, trim), expected, "{amount} {code}");
        }
    }

    #[test]
    fn knows_zero_decimal_currencies() {
        assert_eq!(minor_digits("usd"), Some(2));
        assert_eq!(minor_digits("jpy"), Some(0));
        assert_eq!(minor_digits("kwd"), Some(3));
        assert_eq!(minor_digits("xyz"), None);
    }
}
