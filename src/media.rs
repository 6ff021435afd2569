//! Manifest media types: telling them from the bytes (the `mediaType` field is optional in OCI
//! manifests and umoci leaves it out), and content negotiation on `Accept` as the reference
//! registry does it.

use serde::Deserialize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Versioned {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
}

/// The media type a stored manifest is served with, or `None` when the bytes are not a manifest.
pub fn manifest_media_type(bytes: &[u8]) -> Option<String> {
    let v: Versioned = serde_json::from_slice(bytes).ok()?;
    match (v.schema_version, v.media_type) {
        (Some(1), _) => Some(DOCKER_SCHEMA1_SIGNED.to_owned()),
        (_, Some(media_type)) if !media_type.is_empty() => Some(media_type),
        // OCI allows the field to be absent: an index has `manifests`, anything else is an image
        // manifest (distribution's rule).
        _ if v.manifests.as_ref().is_some_and(|m| !m.is_null()) => Some(OCI_INDEX.to_owned()),
        _ => Some(OCI_MANIFEST.to_owned()),
    }
}

/// Whether `media_type` (without parameters) is one of the manifest types the edge serves.
pub fn is_manifest_type(media_type: &str) -> bool {
    [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
        DOCKER_SCHEMA1_SIGNED,
    ]
    .contains(&media_type)
}

/// Whether a client whose `Accept` headers are `accept` may be served `media_type`. The reference
/// registry serves OCI manifests and indexes only to clients that name them (older Docker clients
/// cannot parse them); everything else is served to everyone. Parameters and `q` values are
/// ignored, as there.
pub fn acceptable<'a>(media_type: &str, mut accept: impl Iterator<Item = &'a str>) -> bool {
    if media_type != OCI_MANIFEST && media_type != OCI_INDEX {
        return true;
    }
    accept.any(|header| {
        header.split(',').any(|item| {
            item.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(media_type)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_from_bytes() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
                Some(OCI_MANIFEST),
            ),
            (
                r#"{"schemaVersion":2,"config":{},"layers":[]}"#,
                Some(OCI_MANIFEST),
            ),
            (r#"{"schemaVersion":2,"manifests":[]}"#, Some(OCI_INDEX)),
            (
                r#"{"schemaVersion":2,"manifests":null}"#,
                Some(OCI_MANIFEST),
            ),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#,
                Some(DOCKER_MANIFEST),
            ),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#,
                Some(DOCKER_MANIFEST_LIST),
            ),
            (
                r#"{"schemaVersion":1,"name":"x"}"#,
                Some(DOCKER_SCHEMA1_SIGNED),
            ),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.example+json"}"#,
                Some("application/vnd.example+json"),
            ),
            ("not json", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                manifest_media_type(bytes.as_bytes()).as_deref(),
                *want,
                "{bytes}"
            );
        }
    }

    #[test]
    fn negotiation() {
        let docker_client = [
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
        ];
        assert!(acceptable(DOCKER_MANIFEST, docker_client.into_iter()));
        assert!(!acceptable(OCI_MANIFEST, docker_client.into_iter()));
        assert!(!acceptable(OCI_INDEX, std::iter::empty()));
        assert!(acceptable(DOCKER_MANIFEST, std::iter::empty()));
        let oci_client = [
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.index.v1+json;q=0.5, application/vnd.oci.image.manifest.v1+json",
        ];
        assert!(acceptable(OCI_MANIFEST, oci_client.into_iter()));
        assert!(acceptable(OCI_INDEX, oci_client.into_iter()));
    }
}
