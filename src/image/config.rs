//! The image config, kept as a JSON object so that fields strata does not
//! model (Healthcheck, OnBuild, vendor extensions) survive untouched.

use serde_json::{Map, Value, json};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::spec::Platform;

/// An OCI / Docker image config document.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageConfig {
    doc: Map<String, Value>,
}

impl ImageConfig {
    /// An empty config for `platform`.
    pub fn new(platform: &Platform) -> Self {
        let mut doc = Map::new();
        doc.insert("architecture".into(), json!(platform.architecture));
        doc.insert("os".into(), json!(platform.os));
        if let Some(v) = &platform.variant {
            doc.insert("variant".into(), json!(v));
        }
        doc.insert("config".into(), json!({}));
        doc.insert("rootfs".into(), json!({"type": "layers", "diff_ids": []}));
        doc.insert("history".into(), json!([]));
        ImageConfig { doc }
    }

    /// Parses a config document.
    pub fn parse(bytes: &[u8], location: &str) -> Result<Self> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid("image config", location, e.to_string()))?;
        let Value::Object(doc) = v else {
            return Err(Error::invalid(
                "image config",
                location,
                "not a JSON object",
            ));
        };
        let cfg = ImageConfig { doc };
        cfg.diff_ids()
            .map_err(|e| Error::invalid("image config", location, e.to_string()))?;
        Ok(cfg)
    }

    /// The canonical bytes of this config.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::json::to_canonical(&self.doc)
    }

    /// The whole document.
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.doc
    }

    /// The platform the config declares.
    pub fn platform(&self) -> Platform {
        let s = |k: &str| self.doc.get(k).and_then(Value::as_str).map(str::to_string);
        Platform {
            architecture: s("architecture").unwrap_or_default(),
            os: s("os").unwrap_or_default(),
            variant: s("variant"),
            os_version: s("os.version"),
            os_features: None,
        }
    }

    /// rootfs.diff_ids.
    pub fn diff_ids(&self) -> Result<Vec<Digest>> {
        let Some(ids) = self.doc.get("rootfs").and_then(|r| r.get("diff_ids")) else {
            return Ok(Vec::new());
        };
        let arr = ids
            .as_array()
            .ok_or_else(|| Error::bad_input("rootfs.diff_ids", "is not an array"))?;
        arr.iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| Error::bad_input("rootfs.diff_ids", "holds a non-string"))?
                    .parse()
            })
            .collect()
    }

    pub(crate) fn push_diff_id(&mut self, d: &Digest) {
        let rootfs = self
            .doc
            .entry("rootfs")
            .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        if !rootfs.is_object() {
            *rootfs = json!({"type": "layers", "diff_ids": []});
        }
        let obj = rootfs.as_object_mut().expect("object");
        obj.insert("type".into(), json!("layers"));
        let ids = obj.entry("diff_ids").or_insert_with(|| json!([]));
        if !ids.is_array() {
            *ids = json!([]);
        }
        ids.as_array_mut()
            .expect("array")
            .push(json!(d.to_string()));
    }

    pub(crate) fn push_history(&mut self, created: &str, created_by: &str, empty_layer: bool) {
        let h = self.doc.entry("history").or_insert_with(|| json!([]));
        if !h.is_array() {
            *h = json!([]);
        }
        let mut entry = json!({"created": created, "created_by": created_by, "comment": "strata"});
        if empty_layer {
            entry["empty_layer"] = json!(true);
        }
        h.as_array_mut().expect("array").push(entry);
    }

    pub(crate) fn set_created(&mut self, created: &str) {
        self.doc.insert("created".into(), json!(created));
    }

    /// The `config` object (container settings), created when absent.
    fn container(&mut self) -> &mut Map<String, Value> {
        let c = self.doc.entry("config").or_insert_with(|| json!({}));
        if !c.is_object() {
            *c = json!({});
        }
        c.as_object_mut().expect("object")
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.doc.get("config").and_then(|c| c.get(key))
    }

    /// Sets the entrypoint.
    pub fn set_entrypoint(&mut self, argv: Vec<String>) {
        self.container().insert("Entrypoint".into(), json!(argv));
    }
    /// Sets the default arguments.
    pub fn set_cmd(&mut self, argv: Vec<String>) {
        self.container().insert("Cmd".into(), json!(argv));
    }
    /// Sets `KEY=VALUE` in Env, replacing an earlier value of `KEY`.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let env = self.container().entry("Env").or_insert_with(|| json!([]));
        if !env.is_array() {
            *env = json!([]);
        }
        let arr = env.as_array_mut().expect("array");
        let prefix = format!("{key}=");
        let item = json!(format!("{key}={value}"));
        match arr
            .iter_mut()
            .find(|v| v.as_str().is_some_and(|s| s.starts_with(&prefix)))
        {
            Some(slot) => *slot = item,
            None => arr.push(item),
        }
    }
    /// Sets the working directory.
    pub fn set_workdir(&mut self, dir: &str) {
        self.container().insert("WorkingDir".into(), json!(dir));
    }
    /// Sets the user (`uid[:gid]` or a name).
    pub fn set_user(&mut self, user: &str) {
        self.container().insert("User".into(), json!(user));
    }
    /// Adds an exposed port; `8080` means `8080/tcp`.
    pub fn add_exposed_port(&mut self, port: &str) -> Result<()> {
        let (num, proto) = port.split_once('/').unwrap_or((port, "tcp"));
        if num.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(Error::bad_input(
                "--expose",
                format!("{port:?} is not PORT[/tcp|udp|sctp], e.g. 8080 or 53/udp"),
            ));
        }
        self.object_set("ExposedPorts", &format!("{num}/{proto}"));
        Ok(())
    }
    /// Adds a volume.
    pub fn add_volume(&mut self, path: &str) -> Result<()> {
        if !path.starts_with('/') {
            return Err(Error::bad_input(
                "--volume",
                format!("{path:?} must be an absolute path"),
            ));
        }
        self.object_set("Volumes", path);
        Ok(())
    }
    fn object_set(&mut self, field: &str, key: &str) {
        let m = self.container().entry(field).or_insert_with(|| json!({}));
        if !m.is_object() {
            *m = json!({});
        }
        m.as_object_mut()
            .expect("object")
            .insert(key.into(), json!({}));
    }
    /// Sets a label.
    pub fn set_label(&mut self, key: &str, value: &str) {
        let m = self
            .container()
            .entry("Labels")
            .or_insert_with(|| json!({}));
        if !m.is_object() {
            *m = json!({});
        }
        m.as_object_mut()
            .expect("object")
            .insert(key.into(), json!(value));
    }
    /// Sets the stop signal (e.g. SIGTERM).
    pub fn set_stop_signal(&mut self, sig: &str) {
        self.container().insert("StopSignal".into(), json!(sig));
    }

    /// Entrypoint, if set.
    pub fn entrypoint(&self) -> Option<Vec<String>> {
        self.get("Entrypoint").and_then(string_list)
    }
    /// Cmd, if set.
    pub fn cmd(&self) -> Option<Vec<String>> {
        self.get("Cmd").and_then(string_list)
    }
    /// Env entries.
    pub fn env(&self) -> Vec<String> {
        self.get("Env").and_then(string_list).unwrap_or_default()
    }
    /// A container-config string field (WorkingDir, User, StopSignal).
    pub fn field(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
    /// Keys of a container-config object field (ExposedPorts, Volumes).
    pub fn keys(&self, key: &str) -> Vec<String> {
        self.get(key)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
    /// Labels.
    pub fn labels(&self) -> Vec<(String, String)> {
        self.get("Labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
    /// History entries' created_by (or comment) strings.
    pub fn history(&self) -> Vec<Value> {
        self.doc
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    })
}

/// Formats seconds since 1970 as an RFC 3339 UTC timestamp.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn keeps_unknown_fields_and_replaces_env() {
        let raw = br#"{"architecture":"amd64","os":"linux","config":{"Healthcheck":{"Test":["CMD","true"]},"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[]},"x-vendor":1}"#;
        let mut c = ImageConfig::parse(raw, "test").unwrap();
        c.set_env("PATH", "/usr/bin:/bin");
        c.set_env("A", "b");
        let out: Value = serde_json::from_slice(&c.to_bytes()).unwrap();
        assert_eq!(out["config"]["Healthcheck"]["Test"][1], "true");
        assert_eq!(out["x-vendor"], 1);
        assert_eq!(out["config"]["Env"], json!(["PATH=/usr/bin:/bin", "A=b"]));
        assert!(c.add_exposed_port("80/xyz").is_err());
    }
}
