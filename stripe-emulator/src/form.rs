//! Stripe's request encoding: `application/x-www-form-urlencoded` with bracketed
//! keys (`line_items[0][price]=…`, `expand[]=…`, `metadata[plan]=…`), decoded into a
//! JSON tree whose leaves are strings, plus the unknown-parameter check Stripe does.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::ApiError;

enum Node {
    Leaf(String),
    Map(Vec<(String, Node)>),
    List(BTreeMap<usize, Node>),
}

/// Decodes a form body or query string.
pub fn parse(input: &[u8]) -> Result<Value, ApiError> {
    let mut root = Node::Map(Vec::new());
    for (key, value) in form_urlencoded::parse(input) {
        let segments = split_key(&key)
            .ok_or_else(|| ApiError::invalid_request(format!("Invalid parameter name: {key}")))?;
        insert(&mut root, &segments, value.into_owned(), &key)?;
    }
    Ok(into_value(root))
}

fn split_key(key: &str) -> Option<Vec<String>> {
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return None;
    }
    let mut segments = vec![head.to_owned()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        segments.push(inner[..end].to_owned());
        rest = &inner[end + 1..];
    }
    Some(segments)
}

fn insert(node: &mut Node, segments: &[String], value: String, key: &str) -> Result<(), ApiError> {
    let conflict = || ApiError::invalid_request(format!("Conflicting values for parameter {key}"));
    let Some((first, rest)) = segments.split_first() else {
        return Err(conflict());
    };
    let child_is_list = rest
        .first()
        .is_some_and(|next| next.is_empty() || next.parse::<usize>().is_ok());
    let make_child = || {
        if rest.is_empty() {
            Node::Leaf(String::new())
        } else if child_is_list {
            Node::List(BTreeMap::new())
        } else {
            Node::Map(Vec::new())
        }
    };
    let child: &mut Node = match node {
        Node::Map(entries) => {
            let position = match entries.iter().position(|(name, _)| name == first) {
                Some(position) => position,
                None => {
                    entries.push((first.clone(), make_child()));
                    entries.len() - 1
                }
            };
            &mut entries[position].1
        }
        Node::List(items) => {
            let index = if first.is_empty() {
                items.keys().next_back().map_or(0, |last| last + 1)
            } else {
                first.parse::<usize>().map_err(|_| conflict())?
            };
            items.entry(index).or_insert_with(make_child)
        }
        Node::Leaf(_) => return Err(conflict()),
    };
    if rest.is_empty() {
        *child = Node::Leaf(value);
        Ok(())
    } else {
        insert(child, rest, value, key)
    }
}

fn into_value(node: Node) -> Value {
    match node {
        Node::Leaf(value) => Value::String(value),
        Node::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k, into_value(v)))
                .collect::<Map<_, _>>(),
        ),
        Node::List(items) => Value::Array(items.into_values().map(into_value).collect()),
    }
}

/// Rejects any parameter not matched by `allowed`, naming it as Stripe does
/// (`line_items[0][bogus]`). Patterns are dotted paths where `*` matches any key
/// (metadata) and `[]` any list index: `line_items.[].price`, `metadata.*`.
pub fn check_allowed(params: &Value, allowed: &[&str]) -> Result<(), ApiError> {
    let mut leaves = Vec::new();
    collect_leaves(params, &mut Vec::new(), &mut leaves);
    for path in leaves {
        let matched = allowed.iter().any(|pattern| {
            let pattern: Vec<&str> = pattern.split('.').collect();
            pattern.len() <= path.len()
                && pattern.iter().zip(&path).all(|(p, seg)| match (p, seg) {
                    (&"**", _) => true,
                    (&"*", Seg::Key(_)) => true,
                    (&"[]", Seg::Index(_)) => true,
                    (p, Seg::Key(k)) => p == k,
                    _ => false,
                })
                // A pattern names a whole value: `metadata.*` covers `metadata[k]`,
                // and a pattern ending early covers a nested value only if it ends in `**`.
                && (pattern.len() == path.len() || pattern.last() == Some(&"**"))
        });
        if !matched {
            return Err(ApiError::unknown_parameter(&display_path(&path)));
        }
    }
    Ok(())
}

#[derive(Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

fn collect_leaves(value: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    if prefix.is_empty() && value.as_object().is_some_and(|map| map.is_empty()) {
        return; // no parameters at all
    }
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                prefix.push(Seg::Key(key.clone()));
                collect_leaves(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, child) in items.iter().enumerate() {
                prefix.push(Seg::Index(index));
                collect_leaves(child, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push(
            prefix
                .iter()
                .map(|seg| match seg {
                    Seg::Key(k) => Seg::Key(k.clone()),
                    Seg::Index(i) => Seg::Index(*i),
                })
                .collect(),
        ),
    }
}

fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for (i, seg) in path.iter().enumerate() {
        match (i, seg) {
            (0, Seg::Key(k)) => out.push_str(k),
            (_, Seg::Key(k)) => out.push_str(&format!("[{k}]")),
            (_, Seg::Index(n)) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_nested_lists_and_maps() {
        let body = b"line_items%5B0%5D%5Bprice%5D=price_1&line_items%5B0%5D%5Bquantity%5D=2&line_items[1][price]=price_2&expand[]=a&expand[]=b&metadata[plan]=premium&mode=subscription";
        assert_eq!(
            parse(body).unwrap(),
            json!({
                "line_items": [{"price": "price_1", "quantity": "2"}, {"price": "price_2"}],
                "expand": ["a", "b"],
                "metadata": {"plan": "premium"},
                "mode": "subscription"
            })
        );
    }

    #[test]
    fn names_unknown_parameters_like_stripe() {
        let params = parse(b"line_items[0][price]=p&line_items[0][bogus]=1&metadata[x]=y").unwrap();
        let allowed = ["line_items.[].price", "metadata.*"];
        let err = check_allowed(&params, &allowed).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("line_items[0][bogus]"));
        assert!(check_allowed(
            &parse(b"line_items[0][price]=p&metadata[x]=y").unwrap(),
            &allowed
        )
        .is_ok());
        // `metadata=` (empty, to clear it) is allowed too.
        assert!(check_allowed(&parse(b"metadata=").unwrap(), &["metadata", "metadata.*"]).is_ok());
    }

    #[test]
    fn rejects_malformed_keys() {
        assert!(parse(b"[x]=1").is_err());
        assert!(parse(b"a[b=1").is_err());
        assert!(parse(b"a=1&a[b]=2").is_err());
    }
}
