//! Debian version numbers (`[epoch:]upstream[-revision]`) and their order,
//! as dpkg compares them (deb-version(7)): `~` sorts before everything,
//! even the end of the string; letters before other characters; digit runs
//! compare as numbers.

use std::cmp::Ordering;
use std::fmt;

/// A parsed Debian version.
#[derive(Clone, Debug, Eq)]
pub struct Version {
    epoch: u64,
    upstream: String,
    revision: String,
    text: String,
}

impl Version {
    /// Parses `[epoch:]upstream[-revision]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let text = s.trim();
        if text.is_empty() {
            return Err("empty version".into());
        }
        let (epoch, rest) = match text.split_once(':') {
            Some((e, rest)) => (
                e.parse::<u64>()
                    .map_err(|_| format!("version {text:?}: epoch {e:?} is not a number"))?,
                rest,
            ),
            None => (0, text),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        if upstream.is_empty() || !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            // dpkg only warns about this; real archives have such versions.
            if upstream.is_empty() {
                return Err(format!("version {text:?} has an empty upstream part"));
            }
        }
        if text.chars().any(|c| c.is_whitespace()) {
            return Err(format!("version {text:?} contains white space"));
        }
        Ok(Version {
            epoch,
            upstream: upstream.to_string(),
            revision: revision.to_string(),
            text: text.to_string(),
        })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix, character by character.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        // Digit runs, as numbers (leading zeros ignored).
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let si = i;
        let sj = j;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (da, db) = (&a[si..i], &b[sj..j]);
        let c = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
        if c != Ordering::Equal {
            return c;
        }
    }
    Ordering::Equal
}

/// A version relation operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    /// `<<`
    Lt,
    /// `<=`
    Le,
    /// `=`
    Eq,
    /// `>=`
    Ge,
    /// `>>`
    Gt,
}

impl Op {
    /// Parses `<<`, `<=`, `=`, `>=`, `>>` (and the obsolete `<` / `>`,
    /// which mean `<=` / `>=`).
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }

    /// Whether `have OP want` holds.
    pub fn holds(self, have: &Version, want: &Version) -> bool {
        let c = have.cmp(want);
        match self {
            Op::Lt => c == Ordering::Less,
            Op::Le => c != Ordering::Greater,
            Op::Eq => c == Ordering::Equal,
            Op::Ge => c != Ordering::Less,
            Op::Gt => c == Ordering::Greater,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn dpkg_order() {
        // Pairs from dpkg's own test suite (t-version.c), a < b.
        let less = [
            ("1.0~rc1", "1.0"),
            ("1.0", "1.0-1"),
            ("1.0-1", "1.0-2"),
            ("1.0~", "1.0"),
            ("1.0~~", "1.0~"),
            ("1.0~~a", "1.0~"),
            ("1.2.3", "1.2.10"),
            ("1:0.1", "2:0.0"),
            ("9.9", "1:0.1"),
            ("1.0a", "1.0+"),
            ("1.0", "1.0a"),
            ("2.39.2-1", "1:2.39.2-1"),
            ("1.0-1~bpo1", "1.0-1"),
            ("0.5.12-2", "0.5.12-2+b1"),
        ];
        for (a, b) in less {
            assert!(v(a) < v(b), "{a} < {b}");
            assert!(v(b) > v(a), "{b} > {a}");
        }
        assert_eq!(v("1.0"), v("1.0-0"));
        assert_eq!(v("0:1.0"), v("1.0"));
        assert_eq!(v("1.001"), v("1.1"));
        assert!(Version::parse("a:1").is_err());
        assert!(Version::parse("").is_err());
    }

    #[test]
    fn ops() {
        assert!(Op::Lt.holds(&v("1"), &v("2")));
        assert!(!Op::Lt.holds(&v("2"), &v("2")));
        assert!(Op::Le.holds(&v("2"), &v("2")));
        assert!(Op::Ge.holds(&v("2.0"), &v("2")));
        assert!(Op::Gt.holds(&v("2.1"), &v("2")));
        assert!(Op::Eq.holds(&v("0:2"), &v("2")));
        assert_eq!(Op::parse(">"), Some(Op::Ge));
    }
}
