//! Pulls through a running edge with the `oci-client` crate and checks every manifest against the
//! origin and every layer against its digest. Needs the local stack: `scripts/test` starts it and
//! runs this with `EDGE_ADDR` and `ORIGIN_ADDR` (host:port, plain HTTP) set:
//! `cargo test --test oci_client -- --ignored`.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

fn addr(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} must name a running registry (host:port); run scripts/test")
    })
}

/// The edge's admin (`ADMIN_USER`, `ADMIN_PASSWORD`): oci-client signs in through the edge's token
/// service.
fn edge_auth() -> RegistryAuth {
    let user = std::env::var("ADMIN_USER").unwrap_or_else(|_| "admin".into());
    let password = std::env::var("ADMIN_PASSWORD").expect("ADMIN_PASSWORD: run scripts/test");
    RegistryAuth::Basic(user, password)
}

fn client() -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
}

const MANIFEST_TYPES: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs the local stack: run scripts/test"]
async fn pulls_through_the_edge_match_the_origin() {
    let edge = addr("EDGE_ADDR");
    let origin = addr("ORIGIN_ADDR");
    let client = client();
    let images = [
        "library/busybox:1",
        "multi/arch:latest",
        "docker/v2s2:1",
        "team/app/service:v1",
    ];
    for image in images {
        let at_edge: Reference = format!("{edge}/{image}").parse().unwrap();
        let at_origin: Reference = format!("{origin}/{image}").parse().unwrap();
        let (edge_bytes, edge_digest) = client
            .pull_manifest_raw(&at_edge, &edge_auth(), MANIFEST_TYPES)
            .await
            .unwrap();
        let (origin_bytes, origin_digest) = client
            .pull_manifest_raw(&at_origin, &RegistryAuth::Anonymous, MANIFEST_TYPES)
            .await
            .unwrap();
        assert_eq!(edge_digest, origin_digest, "{image}: manifest digest");
        assert_eq!(edge_bytes, origin_bytes, "{image}: manifest bytes");
        assert_eq!(
            format!("sha256:{}", hex::encode(Sha256::digest(&edge_bytes))),
            edge_digest,
            "{image}"
        );

        // The whole image, layers through the edge's 307 redirects, for the host's platform.
        let data = client
            .pull(
                &at_edge,
                &edge_auth(),
                vec![
                    IMAGE_LAYER_MEDIA_TYPE,
                    IMAGE_LAYER_GZIP_MEDIA_TYPE,
                    IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("{image}: pull: {e}"));
        assert!(!data.layers.is_empty(), "{image}: no layers");
        let manifest = data.manifest.expect("image manifest");
        assert_eq!(
            data.layers.len(),
            manifest.layers.len(),
            "{image}: layer count"
        );
        for layer in &data.layers {
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(&layer.data)));
            let descriptor = manifest
                .layers
                .iter()
                .find(|d| d.digest == digest)
                .unwrap_or_else(|| {
                    panic!("{image}: pulled a layer ({digest}) the manifest does not list")
                });
            assert_eq!(
                layer.data.len() as i64,
                descriptor.size,
                "{image}: layer size"
            );
        }
    }
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs the local stack: run scripts/test"]
async fn unknown_and_invalid_references_fail_at_the_edge() {
    let edge = addr("EDGE_ADDR");
    let client = client();
    for (image, code) in [
        ("library/busybox:no-such-tag", OciErrorCode::ManifestUnknown),
        ("no/such/repo:1", OciErrorCode::NameUnknown),
    ] {
        let reference: Reference = format!("{edge}/{image}").parse().unwrap();
        let result = client
            .pull_manifest_raw(&reference, &edge_auth(), MANIFEST_TYPES)
            .await;
        // The registry's own refusal, not any failure (a TLS or path error would fail here too).
        match result {
            Err(OciDistributionError::RegistryError { envelope, .. })
                if envelope.errors.iter().any(|e| e.code == code) => {}
            other => panic!("{image}: expected {code:?}, got {other:?}"),
        }
    }
    // Control: the same client and credentials resolve a known tag.
    let known: Reference = format!("{edge}/library/busybox:1").parse().unwrap();
    client
        .pull_manifest_raw(&known, &edge_auth(), MANIFEST_TYPES)
        .await
        .expect("a known tag resolves");
    // The registry is private: without credentials nothing resolves (a fresh client: the one above
    // keeps the tokens it was given).
    let result = self::client()
        .pull_manifest_raw(&known, &RegistryAuth::Anonymous, MANIFEST_TYPES)
        .await;
    match result {
        Err(OciDistributionError::UnauthorizedError { .. }) => {}
        other => panic!("an anonymous pull of a private registry: expected 401, got {other:?}"),
    }
}
