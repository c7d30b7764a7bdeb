//! Attaching artifacts (SBOMs) to images in a registry: the artifact is
//! pushed with its `subject`; a registry with the referrers API indexes it
//! by itself, otherwise the tag-schema fallback index (`sha256-HEX`, an
//! OCI index of the subject's referrers) is updated, as the distribution
//! spec prescribes.

use super::api::Repo;
use super::{Client, RegistryRef};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::spec::{Descriptor, Index};

/// How an artifact was attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// The registry offers the referrers API.
    ReferrersApi,
    /// The `sha256-HEX` tag index was updated.
    TagSchema,
}

/// Pushes `artifact` (whose manifest has `subject`) to `target`'s
/// repository and makes it findable from the subject.
pub fn attach(
    client: &Client,
    target: &RegistryRef,
    artifact: &dyn Image,
    descriptor: &Descriptor,
    subject: &Digest,
) -> Result<Attached> {
    let untagged = target.repository_only();
    super::push::push(client, artifact, &untagged, &[], &[], None)?;
    let repo = Repo::new(client, &untagged);
    if repo.referrers(subject)?.is_some() {
        return Ok(Attached::ReferrersApi);
    }
    let tag = format!("sha256-{}", subject.hex());
    let mut index = match repo.get_manifest(&tag) {
        Ok(m) => serde_json::from_slice::<Index>(&m.bytes).map_err(|e| {
            Error::invalid(
                "referrers index",
                format!("{}:{tag}", target.repository),
                format!("{e}; delete that tag so strata can write the fallback index"),
            )
        })?,
        Err(Error::NotFound { .. }) => Index::default(),
        Err(e) => return Err(e),
    };
    if !index
        .manifests
        .iter()
        .any(|d| d.digest == descriptor.digest)
    {
        index.manifests.push(descriptor.clone());
    }
    let bytes = crate::json::to_canonical(&index);
    repo.put_manifest(&tag, &bytes, crate::media::OCI_INDEX)?;
    Ok(Attached::TagSchema)
}
