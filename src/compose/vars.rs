//! Environment variables of layers and images: ordered, `$NAME` and
//! `${NAME}` expanded over what is set beneath.

/// Sets `key` in an ordered environment (an existing key keeps its place).
pub fn set_env(env: &mut Vec<(String, String)>, key: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(e) => e.1 = value,
        None => env.push((key.to_string(), value)),
    }
}

/// [`set_env`] with `value` expanded (see [`expand`]) over what is set.
pub fn set_env_expanded(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    let flat: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let value = expand(value, &flat);
    set_env(env, key, value);
}

/// Expands `$NAME` / `${NAME}` in `value` with the config's current env.
pub fn expand(value: &str, env: &[String]) -> String {
    let lookup = |k: &str| {
        env.iter()
            .find_map(|e| e.strip_prefix(&format!("{k}=")).map(str::to_string))
            .unwrap_or_default()
    };
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(j) => (&inner[..j], j + 2),
                None => ("", 0),
            }
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..n], n)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
        } else {
            out.push_str(&lookup(name));
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}
