//! deb822 control data: paragraphs of `Field: value` lines (Packages
//! indexes, Release files, .deb control files, dpkg status, `.sources`
//! files) and the relation fields (`Depends`, `Provides`, `Conflicts`, …).

use std::io::BufRead;

use super::version::{Op, Version};

/// One paragraph: fields in the order written. Field names compare
/// case-insensitively; continuation lines are kept (joined by `\n`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
}

impl Paragraph {
    /// The value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name`, replacing an existing value or appending the field.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .fields
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(f) => f.1 = value,
            None => self.fields.push((name.to_string(), value)),
        }
    }

    /// Inserts `name` right after field `after` (or at the end).
    pub fn insert_after(&mut self, after: &str, name: &str, value: impl Into<String>) {
        let at = self
            .fields
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(after))
            .map(|i| i + 1)
            .unwrap_or(self.fields.len());
        self.fields.insert(at, (name.to_string(), value.into()));
    }

    /// The fields in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// Whether the paragraph has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Serializes as deb822 (ends with a newline, no blank line).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.fields {
            out.push_str(k);
            out.push(':');
            let mut lines = v.split('\n');
            let first = lines.next().unwrap_or("");
            if !first.is_empty() {
                out.push(' ');
                out.push_str(first);
            }
            out.push('\n');
            for l in lines {
                out.push(' ');
                out.push_str(if l.is_empty() { "." } else { l });
                out.push('\n');
            }
        }
        out
    }
}

/// Reads paragraphs one at a time from a deb822 stream. `#` comment lines
/// are skipped when `comments` is set (apt's `.sources` files allow them;
/// Packages indexes do not have them).
pub struct Paragraphs<R: BufRead> {
    r: R,
    line: String,
    comments: bool,
    lineno: usize,
    /// Line number where the last paragraph returned starts.
    pub start_line: usize,
}

impl<R: BufRead> Paragraphs<R> {
    /// A reader over `r`.
    pub fn new(r: R, comments: bool) -> Self {
        Paragraphs {
            r,
            line: String::new(),
            comments,
            lineno: 0,
            start_line: 0,
        }
    }

    /// The next paragraph, `Ok(None)` at the end. A malformed line is an
    /// error naming its line number.
    pub fn next_paragraph(&mut self) -> std::io::Result<Option<Paragraph>> {
        let mut p = Paragraph::default();
        loop {
            self.line.clear();
            if self.r.read_line(&mut self.line)? == 0 {
                return Ok((!p.is_empty()).then_some(p));
            }
            self.lineno += 1;
            let l = self.line.trim_end_matches(['\n', '\r']);
            if self.comments && l.starts_with('#') {
                continue;
            }
            if l.trim().is_empty() {
                if p.is_empty() {
                    continue;
                }
                return Ok(Some(p));
            }
            if p.is_empty() {
                self.start_line = self.lineno;
            }
            if l.starts_with([' ', '\t']) {
                let Some(last) = p.fields.last_mut() else {
                    return Err(bad_line(
                        self.lineno,
                        "a continuation line before any field",
                    ));
                };
                let cont = l.trim();
                last.1.push('\n');
                if cont != "." {
                    last.1.push_str(cont);
                }
                continue;
            }
            let Some((k, v)) = l.split_once(':') else {
                return Err(bad_line(self.lineno, "a line that is not `Field: value`"));
            };
            p.fields.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

fn bad_line(n: usize, what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {n}: {what}"))
}

/// Parses all paragraphs of a small document (Release files, control
/// files, `.sources` files).
pub fn parse_all(text: &str, comments: bool) -> std::io::Result<Vec<Paragraph>> {
    let mut r = Paragraphs::new(text.as_bytes(), comments);
    let mut out = Vec::new();
    while let Some(p) = r.next_paragraph()? {
        out.push(p);
    }
    Ok(out)
}

/// What architecture a relation asks for (`pkg:any`, `pkg:native`,
/// `pkg:amd64`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchQual {
    /// No qualifier.
    None,
    /// `:any`.
    Any,
    /// `:native`.
    Native,
    /// `:ARCH`.
    Arch(String),
}

/// One alternative of a relation: `name[:arch] [(op version)]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Atom {
    /// Package (or virtual package) name.
    pub name: String,
    /// Architecture qualifier.
    pub arch: ArchQual,
    /// Version constraint.
    pub constraint: Option<(Op, Version)>,
}

impl std::fmt::Display for Atom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        match &self.arch {
            ArchQual::None => {}
            ArchQual::Any => f.write_str(":any")?,
            ArchQual::Native => f.write_str(":native")?,
            ArchQual::Arch(a) => write!(f, ":{a}")?,
        }
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({op} {v})")?;
        }
        Ok(())
    }
}

/// A relation field: groups joined by `,`, each a list of alternatives
/// joined by `|`.
pub type Relations = Vec<Vec<Atom>>;

/// Parses a relation field. Architecture restrictions (`[amd64]`) and
/// build profiles (`<!nocheck>`) are dropped (they belong to source
/// packages); a group left empty by that is dropped too.
pub fn parse_relations(field: &str) -> Result<Relations, String> {
    let mut out = Vec::new();
    for group in field.split(',') {
        let group = group.trim();
        if group.is_empty() {
            continue;
        }
        let mut alts = Vec::new();
        for alt in group.split('|') {
            if let Some(a) = parse_atom(alt.trim())? {
                alts.push(a);
            }
        }
        if !alts.is_empty() {
            out.push(alts);
        }
    }
    Ok(out)
}

fn parse_atom(s: &str) -> Result<Option<Atom>, String> {
    // Drop [arch restrictions] and <profiles>.
    let mut depth = 0;
    let cut = s.char_indices().find_map(|(i, c)| match c {
        '(' => {
            depth += 1;
            None
        }
        ')' => {
            depth -= 1;
            None
        }
        '[' | '<' if depth == 0 => Some(i),
        _ => None,
    });
    let s = cut.map_or(s, |i| s[..i].trim());
    if s.is_empty() {
        return Ok(None);
    }
    let (name_part, constraint) = match s.find('(') {
        Some(i) => {
            let inner = s[i + 1..]
                .strip_suffix(')')
                .or_else(|| s[i + 1..].split_once(')').map(|(a, _)| a))
                .ok_or_else(|| format!("relation {s:?}: unclosed '('"))?
                .trim();
            let op_len = inner
                .find(|c: char| !matches!(c, '<' | '>' | '='))
                .unwrap_or(inner.len());
            let op = Op::parse(&inner[..op_len]).ok_or_else(|| {
                format!("relation {s:?}: unknown operator {:?}", &inner[..op_len])
            })?;
            let v = Version::parse(inner[op_len..].trim())
                .map_err(|e| format!("relation {s:?}: {e}"))?;
            (s[..i].trim(), Some((op, v)))
        }
        None => (s, None),
    };
    let (name, arch) = match name_part.split_once(':') {
        Some((n, "any")) => (n, ArchQual::Any),
        Some((n, "native")) => (n, ArchQual::Native),
        Some((n, a)) => (n, ArchQual::Arch(a.to_string())),
        None => (name_part, ArchQual::None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("relation {s:?}: bad package name {name:?}"));
    }
    Ok(Some(Atom {
        name: name.to_string(),
        arch,
        constraint,
    }))
}

/// Formats relations back into field syntax.
pub fn format_relations(r: &Relations) -> String {
    r.iter()
        .map(|alts| {
            alts.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_continuations() {
        let text =
            "Package: a\nDescription: short\n long line\n .\n more\n\n\nPackage: b\nVersion: 1\n";
        let ps = parse_all(text, false).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("package"), Some("a"));
        assert_eq!(ps[0].get("Description"), Some("short\nlong line\n\nmore"));
        assert_eq!(ps[1].get("Version"), Some("1"));
        let round = parse_all(&ps[0].to_text(), false).unwrap();
        assert_eq!(round[0], ps[0]);
        let err = parse_all("Package: a\nno colon here\n", false).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert_eq!(parse_all("# c\nTypes: deb\n", true).unwrap().len(), 1);
    }

    #[test]
    fn relations() {
        let r = parse_relations(
            "libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, perl:any, python3 [amd64] <!nocheck>, foo (<< 2~) [i386]",
        )
        .unwrap();
        assert_eq!(r.len(), 5);
        assert_eq!(r[0][0].name, "libc6");
        assert_eq!(r[0][0].constraint.as_ref().unwrap().0, Op::Ge);
        assert_eq!(r[1].len(), 2);
        assert_eq!(r[1][1].name, "debconf-2.0");
        assert_eq!(r[2][0].arch, ArchQual::Any);
        assert_eq!(r[3][0].name, "python3");
        assert_eq!(
            format_relations(&r),
            "libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, perl:any, python3, foo (<< 2~)"
        );
        assert!(parse_relations("a (~~ 1)").is_err());
        assert!(parse_relations("a (>= 1").is_err());
    }
}
