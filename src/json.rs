//! Canonical JSON: object keys sorted by their UTF-8 bytes, no insignificant
//! whitespace. The same document always serializes to the same bytes, so
//! manifests and configs get the same digest on every machine.

use serde::Serialize;
use serde_json::Value;

/// Serializes `v` canonically.
pub fn to_canonical<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let value = serde_json::to_value(v).expect("strata's types always serialize to JSON");
    let mut out = Vec::new();
    write_value(&value, &mut out);
    out
}

fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("string serializes");
                out.push(b':');
                write_value(&map[k.as_str()], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("scalar serializes"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sorts_keys_recursively() {
        let v = serde_json::json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": "é"}});
        assert_eq!(
            String::from_utf8(super::to_canonical(&v)).unwrap(),
            r#"{"a":{"c":"é","z":[{"x":2,"y":1}]},"b":1}"#
        );
    }
}
