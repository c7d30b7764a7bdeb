//! Dependency resolution for one layer's packages.
//!
//! Starting from the packages asked for, every `Pre-Depends` and `Depends`
//! group is satisfied in field order: a group already met by a package of
//! the layers beneath or by one already chosen adds nothing; otherwise the
//! first alternative that can be met is taken, by the highest version of a
//! real package of that name, else by a provider of the virtual package
//! (one already chosen, else by `Priority`, then name). The choices depend
//! only on the indexes and the request, never on hash order or timing.
//! `Conflicts` and `Breaks` between the result and everything beneath are
//! errors, and so is an unmet dependency, with the chain that led to it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::control::{ArchQual, Atom, Relations, parse_relations};
use super::index::{Package, PackageDb};
use super::version::{Op, Version};
use crate::digest::Digest;

/// A package present in a layer beneath (from its dpkg status).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Installed {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// `Provides` (raw).
    #[serde(default)]
    pub provides: String,
    /// `Conflicts` and `Breaks` (raw, joined by `,`).
    #[serde(default)]
    pub conflicts: String,
    /// The layer it is in.
    pub layer: String,
}

/// A package chosen for the layer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Selected {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// Repository URI.
    pub repo: String,
    /// Index of the repository among the layer's repositories.
    pub repo_index: usize,
    /// Pool path.
    pub filename: String,
    /// .deb size.
    pub size: u64,
    /// .deb SHA256.
    pub sha256: Digest,
    /// Why it is there: `requested`, or the package whose dependency it meets.
    pub reason: String,
    /// `Replaces` (raw): which packages' files it may overwrite.
    #[serde(default)]
    pub replaces: String,
    /// `Provides` (raw).
    #[serde(default)]
    pub provides: String,
    /// `Conflicts` and `Breaks` (raw, joined by `,`).
    #[serde(default)]
    pub conflicts: String,
}

impl Selected {
    /// `name=version`.
    pub fn label(&self) -> String {
        format!("{}={}", self.name, self.version)
    }
}

struct Resolver<'a> {
    db: &'a PackageDb,
    installed: &'a [Installed],
    inst_versions: Vec<Option<Version>>,
    inst_provides: Vec<Relations>,
    chosen: Vec<usize>,
    chosen_by_name: HashMap<&'a str, usize>,
    parent: Vec<Option<usize>>,
    parsed: HashMap<usize, (Relations, Relations)>,
}

fn rank(priority: &str) -> u8 {
    match priority {
        "required" => 0,
        "important" => 1,
        "standard" => 2,
        "optional" => 3,
        "extra" => 4,
        _ => 5,
    }
}

impl<'a> Resolver<'a> {
    fn arch_ok(&self, p: &Package, a: &Atom) -> bool {
        let native = p.arch == self.db.arch || p.arch == "all";
        match &a.arch {
            ArchQual::None | ArchQual::Any | ArchQual::Native => native,
            ArchQual::Arch(x) => *x == p.arch || (p.arch == "all" && *x == self.db.arch),
        }
    }

    fn version_ok(have: &Version, a: &Atom) -> bool {
        a.constraint
            .as_ref()
            .is_none_or(|(op, want)| op.holds(have, want))
    }

    /// A provided `(name, version)` meets `a`: unversioned provides only
    /// meet unversioned dependencies.
    fn provide_ok(prov: &Atom, a: &Atom) -> bool {
        prov.name == a.name
            && match (&a.constraint, &prov.constraint) {
                (None, _) => true,
                (Some((op, want)), Some((Op::Eq, have))) => op.holds(have, want),
                _ => false,
            }
    }

    /// Which installed package meets `a`, if any.
    fn met_below(&self, a: &Atom) -> Option<usize> {
        (0..self.installed.len()).find(|&i| {
            (self.installed[i].name == a.name
                && self.inst_versions[i]
                    .as_ref()
                    .is_some_and(|v| Self::version_ok(v, a)))
                || self.inst_provides[i]
                    .iter()
                    .flatten()
                    .any(|p| Self::provide_ok(p, a))
        })
    }

    /// Which chosen package meets `a`, if any.
    fn met_chosen(&self, a: &Atom) -> Option<usize> {
        self.chosen.iter().position(|&id| {
            let p = &self.db.packages[id];
            (p.name == a.name && self.arch_ok(p, a) && Self::version_ok(&p.version, a))
                || p.provides.iter().any(|pr| Self::provide_ok(pr, a))
        })
    }

    /// The package to choose for `a`, or why there is none.
    fn candidate(&self, a: &Atom) -> Result<usize, String> {
        if let Some(i) = self.installed.iter().position(|p| p.name == a.name) {
            let p = &self.installed[i];
            return Err(format!(
                "{} {} is in layer {} beneath, which does not meet {a}; rebuild that layer with a newer {}",
                p.name, p.version, p.layer, p.name
            ));
        }
        if let Some(&pos) = self.chosen_by_name.get(a.name.as_str()) {
            let p = &self.db.packages[self.chosen[pos]];
            return Err(format!(
                "{} {} is already chosen (for {}), which does not meet {a}",
                p.name,
                p.version,
                self.reason(pos)
            ));
        }
        let real = self
            .db
            .by_name(&a.name)
            .iter()
            .copied()
            .filter(|&id| {
                let p = &self.db.packages[id];
                self.arch_ok(p, a) && Self::version_ok(&p.version, a)
            })
            .max_by(|&x, &y| {
                let (p, q) = (&self.db.packages[x], &self.db.packages[y]);
                p.version.cmp(&q.version).then(y.cmp(&x))
            });
        if let Some(id) = real {
            return Ok(id);
        }
        let provider = self
            .db
            .providers(&a.name)
            .iter()
            .copied()
            .filter(|&id| {
                let p = &self.db.packages[id];
                self.arch_ok(
                    p,
                    &Atom {
                        arch: ArchQual::None,
                        ..a.clone()
                    },
                ) && p.provides.iter().any(|pr| Self::provide_ok(pr, a))
                    && !self.chosen_by_name.contains_key(p.name.as_str())
                    && !self.installed.iter().any(|i| i.name == p.name)
            })
            .min_by(|&x, &y| {
                let (p, q) = (&self.db.packages[x], &self.db.packages[y]);
                rank(&p.priority)
                    .cmp(&rank(&q.priority))
                    .then_with(|| p.name.cmp(&q.name))
                    .then_with(|| q.version.cmp(&p.version))
            });
        if let Some(id) = provider {
            return Ok(id);
        }
        let versions: Vec<String> = self
            .db
            .by_name(&a.name)
            .iter()
            .map(|&id| {
                let p = &self.db.packages[id];
                format!("{} ({})", p.version, p.arch)
            })
            .collect();
        Err(if versions.is_empty() {
            format!("no package {} or package providing it", a.name)
        } else {
            format!("{} is available only as {}", a.name, versions.join(", "))
        })
    }

    fn choose(&mut self, id: usize, parent: Option<usize>, queue: &mut VecDeque<usize>) {
        let pos = self.chosen.len();
        self.chosen.push(id);
        self.parent.push(parent);
        self.chosen_by_name
            .insert(self.db.packages[id].name.as_str(), pos);
        queue.push_back(pos);
    }

    fn reason(&self, pos: usize) -> String {
        match self.parent[pos] {
            None => "requested".into(),
            Some(p) => self.db.packages[self.chosen[p]].name.clone(),
        }
    }

    /// `a → b → c` for chosen package `pos`.
    fn chain(&self, pos: usize) -> String {
        let mut names = vec![self.db.packages[self.chosen[pos]].name.clone()];
        let mut cur = self.parent[pos];
        while let Some(p) = cur {
            names.push(self.db.packages[self.chosen[p]].name.clone());
            cur = self.parent[p];
        }
        names.reverse();
        names.join(" → ")
    }

    fn relations(&mut self, id: usize) -> Result<&(Relations, Relations), String> {
        if !self.parsed.contains_key(&id) {
            let p = &self.db.packages[id];
            let label = format!("{} {}", p.name, p.version);
            let mut deps = parse_relations(&p.pre_depends).map_err(|e| format!("{label}: {e}"))?;
            deps.extend(parse_relations(&p.depends).map_err(|e| format!("{label}: {e}"))?);
            let mut conf = parse_relations(&p.conflicts).map_err(|e| format!("{label}: {e}"))?;
            conf.extend(parse_relations(&p.breaks).map_err(|e| format!("{label}: {e}"))?);
            self.parsed.insert(id, (deps, conf));
        }
        Ok(&self.parsed[&id])
    }
}

/// Replaces each `priority:LEVEL` entry by every package of that priority
/// (by name; `priority:required` plus `apt` is what `debootstrap
/// --variant=minbase` installs).
fn expand_priorities(db: &PackageDb, request: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for s in request {
        let Some(level) = s.strip_prefix("priority:") else {
            out.push(s.clone());
            continue;
        };
        let names: std::collections::BTreeSet<&str> = db
            .packages
            .iter()
            .filter(|p| p.priority == level && (p.arch == db.arch || p.arch == "all"))
            .map(|p| p.name.as_str())
            .collect();
        if names.is_empty() {
            return Err(format!(
                "{s:?}: no package has Priority: {level} (levels: required, important, standard, optional)"
            ));
        }
        out.extend(names.into_iter().map(str::to_string));
    }
    Ok(out)
}

/// A request entry: `name` or `name=version`.
fn parse_request(s: &str) -> Result<Atom, String> {
    let (name, version) = match s.split_once('=') {
        Some((n, v)) => (
            n.trim(),
            Some((
                Op::Eq,
                Version::parse(v).map_err(|e| format!("{s:?}: {e}"))?,
            )),
        ),
        None => (s.trim(), None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("{s:?} is not a package name (or name=version)"));
    }
    Ok(Atom {
        name: name.to_string(),
        arch: ArchQual::None,
        constraint: version,
    })
}

/// Resolves `request` against `db`, given the packages `installed`
/// beneath. Returns the packages to add, dependencies before dependents.
/// The error text names the package, the chain and what to do.
pub fn resolve(
    db: &PackageDb,
    request: &[String],
    installed: &[Installed],
) -> Result<Vec<Selected>, String> {
    let mut r = Resolver {
        db,
        installed,
        inst_versions: installed
            .iter()
            .map(|i| Version::parse(&i.version).ok())
            .collect(),
        inst_provides: installed
            .iter()
            .map(|i| parse_relations(&i.provides).unwrap_or_default())
            .collect(),
        chosen: Vec::new(),
        chosen_by_name: HashMap::new(),
        parent: Vec::new(),
        parsed: HashMap::new(),
    };
    let mut queue = VecDeque::new();
    let request = expand_priorities(db, request)?;
    let request = &request[..];
    for s in request {
        let a = parse_request(s)?;
        if r.met_below(&a).is_some() || r.met_chosen(&a).is_some() {
            continue;
        }
        if db.by_name(&a.name).is_empty() && db.providers(&a.name).is_empty() {
            let hint = crate::compose::graph::did_you_mean(&a.name, db.names())
                .map(|m| format!("; did you mean {m:?}?"))
                .unwrap_or_default();
            return Err(format!(
                "package {:?} not found in the repositories for {}{hint}",
                a.name, db.arch
            ));
        }
        let id = r
            .candidate(&a)
            .map_err(|why| format!("cannot install {s}: {why}"))?;
        r.choose(id, None, &mut queue);
    }
    while let Some(pos) = queue.pop_front() {
        let id = r.chosen[pos];
        let deps = r.relations(id)?.0.clone();
        'group: for group in &deps {
            for a in group {
                if r.met_below(a).is_some() || r.met_chosen(a).is_some() {
                    continue 'group;
                }
            }
            let mut why = Vec::new();
            for a in group {
                match r.candidate(a) {
                    Ok(c) => {
                        r.choose(c, Some(pos), &mut queue);
                        continue 'group;
                    }
                    Err(w) => why.push(w),
                }
            }
            let p = &db.packages[id];
            let alts = group
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" | ");
            return Err(format!(
                "unmet dependency: {} {} depends on {alts} ({}); chain: {}",
                p.name,
                p.version,
                why.join("; "),
                r.chain(pos)
            ));
        }
    }
    check_conflicts(&mut r)?;
    Ok(order(&mut r, request))
}

fn check_conflicts(r: &mut Resolver<'_>) -> Result<(), String> {
    for pos in 0..r.chosen.len() {
        let id = r.chosen[pos];
        let conf = r.relations(id)?.1.clone();
        let p = &r.db.packages[id];
        for a in conf.iter().flatten() {
            for (qpos, &qid) in r.chosen.iter().enumerate() {
                let q = &r.db.packages[qid];
                if q.name == p.name {
                    continue;
                }
                let hit = (q.name == a.name && Resolver::version_ok(&q.version, a))
                    || q.provides.iter().any(|pr| Resolver::provide_ok(pr, a));
                if hit {
                    return Err(format!(
                        "conflicting packages: {} {} conflicts with (or breaks) {a}, met by {} {}; chains: {} and {}. Leave one of them out",
                        p.name,
                        p.version,
                        q.name,
                        q.version,
                        r.chain(pos),
                        r.chain(qpos)
                    ));
                }
            }
            if let Some(i) = r.met_below(a)
                && r.installed[i].name != p.name
            {
                let q = &r.installed[i];
                return Err(format!(
                    "conflicting packages: {} {} conflicts with (or breaks) {a}, met by {} {} in layer {} beneath; chain: {}",
                    p.name,
                    p.version,
                    q.name,
                    q.version,
                    q.layer,
                    r.chain(pos)
                ));
            }
        }
    }
    // What is beneath may conflict with what is added.
    for (i, inst) in r.installed.iter().enumerate() {
        for a in parse_relations(&inst.conflicts)
            .unwrap_or_default()
            .iter()
            .flatten()
        {
            if let Some(pos) = r.met_chosen(a) {
                let q = &r.db.packages[r.chosen[pos]];
                if q.name != inst.name {
                    return Err(format!(
                        "conflicting packages: {} {} in layer {} conflicts with (or breaks) {a}, met by {} {} (chain: {})",
                        inst.name,
                        inst.version,
                        r.installed[i].layer,
                        q.name,
                        q.version,
                        r.chain(pos)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Dependencies before dependents: a depth-first post-order from the
/// requested packages, following dependency groups in field order.
fn order(r: &mut Resolver<'_>, request: &[String]) -> Vec<Selected> {
    let mut done = vec![false; r.chosen.len()];
    let mut out = Vec::new();
    let mut roots: Vec<usize> = (0..r.chosen.len())
        .filter(|&p| r.parent[p].is_none())
        .collect();
    // Every chosen package is reachable from a root; keep request order.
    roots.sort_by_key(|&p| {
        let name = &r.db.packages[r.chosen[p]].name;
        request
            .iter()
            .position(|s| s.split('=').next() == Some(name.as_str()))
            .unwrap_or(usize::MAX)
    });
    roots.extend(0..r.chosen.len());
    let mut on_stack = vec![false; r.chosen.len()];
    for root in roots {
        visit(r, root, &mut done, &mut on_stack, &mut out);
    }
    out.into_iter()
        .map(|pos| {
            let p = &r.db.packages[r.chosen[pos]];
            Selected {
                name: p.name.clone(),
                version: p.version.to_string(),
                arch: p.arch.clone(),
                repo: r
                    .db
                    .releases
                    .get(p.repo)
                    .map(|x| x.repo.uri.clone())
                    .unwrap_or_default(),
                repo_index: p.repo,
                filename: p.filename.clone(),
                size: p.size,
                sha256: p.sha256.clone(),
                reason: r.reason(pos),
                replaces: p.replaces.clone(),
                provides: p
                    .provides
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                conflicts: [p.conflicts.as_str(), p.breaks.as_str()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })
        .collect()
}

fn visit(
    r: &mut Resolver<'_>,
    pos: usize,
    done: &mut [bool],
    on_stack: &mut [bool],
    out: &mut Vec<usize>,
) {
    if done[pos] || on_stack[pos] {
        return;
    }
    on_stack[pos] = true;
    let deps = r
        .relations(r.chosen[pos])
        .map(|d| d.0.clone())
        .unwrap_or_default();
    for group in &deps {
        if let Some(dep) = group.iter().find_map(|a| r.met_chosen(a)) {
            visit(r, dep, done, on_stack, out);
        }
    }
    on_stack[pos] = false;
    done[pos] = true;
    out.push(pos);
}

/// The packages of `selected` by name, for lookups.
pub fn by_name(selected: &[Selected]) -> BTreeMap<&str, &Selected> {
    selected.iter().map(|s| (s.name.as_str(), s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str, depends: &str, provides: &str, conflicts: &str) -> Package {
        Package {
            name: name.into(),
            version: Version::parse(version).unwrap(),
            arch: "amd64".into(),
            multi_arch: String::new(),
            pre_depends: String::new(),
            depends: depends.into(),
            conflicts: conflicts.into(),
            breaks: String::new(),
            replaces: String::new(),
            provides: parse_relations(provides)
                .unwrap()
                .into_iter()
                .flatten()
                .collect(),
            priority: "optional".into(),
            essential: false,
            filename: format!("pool/{name}_{version}.deb"),
            size: 1,
            sha256: Digest::of(format!("{name}{version}").as_bytes()),
            repo: 0,
        }
    }

    fn db() -> PackageDb {
        PackageDb::from_packages(
            "amd64",
            Vec::new(),
            vec![
                pkg(
                    "app",
                    "1.0",
                    "libfoo (>= 2), mta | mail-transport-agent, shell:any",
                    "",
                    "",
                ),
                pkg("libfoo", "1.5", "", "", ""),
                pkg("libfoo", "2.1", "libc", "", ""),
                pkg("libfoo", "2.0", "libc", "", ""),
                pkg("libc", "1", "", "", ""),
                pkg("postfix", "3", "", "mail-transport-agent", ""),
                pkg("exim", "4", "", "mail-transport-agent", "postfix"),
                pkg("shell", "1", "", "", ""),
                pkg("old", "1", "libfoo (<< 2)", "", ""),
                pkg("pinned", "1", "libfoo (= 9)", "", ""),
            ],
        )
    }

    fn names(s: &[Selected]) -> Vec<String> {
        s.iter().map(Selected::label).collect()
    }

    #[test]
    fn resolves_deterministically() {
        let db = db();
        let got = resolve(&db, &["app".into()], &[]).unwrap();
        // Dependencies first; highest libfoo; exim before postfix by name.
        assert_eq!(
            names(&got),
            ["libc=1", "libfoo=2.1", "exim=4", "shell=1", "app=1.0"]
        );
        assert_eq!(got[1].reason, "app");
        assert_eq!(got, resolve(&db, &["app".into()], &[]).unwrap());
    }

    #[test]
    fn skips_what_is_beneath() {
        let db = db();
        let below = vec![Installed {
            name: "libc".into(),
            version: "1".into(),
            arch: "amd64".into(),
            provides: String::new(),
            conflicts: String::new(),
            layer: "base".into(),
        }];
        let got = resolve(&db, &["libfoo".into()], &below).unwrap();
        assert_eq!(names(&got), ["libfoo=2.1"]);
        let got = resolve(&db, &["libc".into()], &below).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn errors_name_the_chain() {
        let db = db();
        let e = resolve(&db, &["pinned".into()], &[]).unwrap_err();
        assert!(e.contains("pinned 1 depends on libfoo (= 9)"), "{e}");
        assert!(e.contains("libfoo is available only as"), "{e}");
        let e = resolve(&db, &["app".into(), "old".into()], &[]).unwrap_err();
        assert!(e.contains("already chosen"), "{e}");
        let e = resolve(&db, &["libfo".into()], &[]).unwrap_err();
        assert!(
            e.contains("not found") && e.contains("did you mean \"libfoo\""),
            "{e}"
        );
        let e = resolve(&db, &["exim".into(), "postfix".into()], &[]).unwrap_err();
        assert!(e.contains("conflicting packages: exim 4"), "{e}");
        let e = resolve(&db, &["priority:important".into()], &[]).unwrap_err();
        assert!(e.contains("no package has Priority: important"), "{e}");
        let e = resolve(&db, &["priority:optional".into()], &[]).unwrap_err();
        assert!(e.contains("old 1 depends on libfoo (<< 2)"), "{e}");
        let ok = resolve(&db, &["libfoo=2.0".into()], &[]).unwrap();
        assert_eq!(names(&ok), ["libc=1", "libfoo=2.0"]);
    }
}
