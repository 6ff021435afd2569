//! The distribution storage layout, as written by the reference registry (`docker-registry`,
//! `registry:2`) and read by the edge. Pure: keys in, keys out.
//!
//! ```text
//! <root> = <prefix>/docker/registry/v2
//! <root>/blobs/<alg>/<first two hex>/<hex>/data                        blob and manifest bytes
//! <root>/repositories/<name>/_layers/<alg>/<hex>/link                  blob linked into repo
//! <root>/repositories/<name>/_manifests/revisions/<alg>/<hex>/link     manifest linked into repo
//! <root>/repositories/<name>/_manifests/tags/<tag>/current/link        tag -> manifest digest
//! <root>/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//! <root>/repositories/<name>/_uploads/<id>/...                         uploads in progress
//! <prefix>/registry-edge/mirrored/<upstream prefix>/<upstream id>/<alg>/<hex>   a mirror's copy, verified
//! <prefix>/registry-edge/mirrored-tags/<name>/_tags/<tag>             when a mirror's tag was seen
//! <prefix>/registry-edge/index/catalog.json                          the catalog index's root
//! <prefix>/registry-edge/index/catalog/<sha256>.json                  a catalog shard
//! <prefix>/registry-edge/index/referrers/<name>/_subjects/<alg>/<hex>/list.json   referrers
//! <prefix>/registry-edge/index/rebuild.json                           the indexes' rebuild
//! ```
//!
//! A `link` file holds a digest as text (`sha256:...`). A repository is a directory under
//! `repositories/` that has a `_manifests` child; its name may span several directories
//! (`team/app/service`). Every `Name`, `Tag` and `Digest` here was validated by its parser, so a
//! key can never climb out of its directory.

use crate::reference::{Algorithm, Digest, Name, Tag};

/// Keys of one registry in a bucket, under the origin's `rootdirectory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: String,
    /// The edge's own objects, beside distribution's tree (never inside it).
    edge: String,
}

impl Layout {
    /// `prefix` is the origin's `rootdirectory` (`/origin`, `origin/`, or empty).
    pub fn new(prefix: &str) -> Layout {
        let prefix = prefix.trim_matches('/');
        let (root, edge) = if prefix.is_empty() {
            ("docker/registry/v2".to_owned(), "registry-edge".to_owned())
        } else {
            (
                format!("{prefix}/docker/registry/v2"),
                format!("{prefix}/registry-edge"),
            )
        };
        Layout { root, edge }
    }

    /// The mark that the upstream of the mirror namespace `prefix` served the bytes of `digest`,
    /// verified (a mirror's fill wrote it): the only blob data a mirror links without copying it
    /// again. Data the origin or another upstream wrote is not the upstream's to claim.
    /// `upstream` names the registry behind the namespace (`Upstream::identity`): a prefix
    /// pointed at another registry, or at other credentials, vouches for nothing the earlier one
    /// supplied.
    pub fn mirrored(&self, prefix: &str, upstream: &str, digest: &Digest) -> String {
        format!(
            "{}/mirrored/{prefix}/{upstream}/{}/{}",
            self.edge,
            digest.algorithm().as_str(),
            digest.hex()
        )
    }

    /// What a mirror's fills last wrote for a tag: `<digest> <unix seconds the edge saw it>`, so
    /// that a fill delivered late never puts the tag back. (No name component starts with `_`.)
    pub fn mirrored_tag(&self, name: &Name, tag: &Tag) -> String {
        format!("{}/mirrored-tags/{name}/_tags/{tag}", self.edge)
    }

    /// The catalog index's root: its shards, in order (`index`).
    pub fn catalog_root(&self) -> String {
        format!("{}/index/catalog.json", self.edge)
    }

    /// A catalog shard, named by the sha256 of its bytes (so it never changes once written).
    pub fn catalog_shard(&self, sha256: &str) -> String {
        format!("{}/index/catalog/{sha256}.json", self.edge)
    }

    /// The referrers index of `subject` in `name`: the descriptors of the manifests whose
    /// `subject` it is.
    pub fn referrers_index(&self, name: &Name, subject: &Digest) -> String {
        format!(
            "{}{}/{}/list.json",
            self.referrers_index_dir(name),
            subject.algorithm().as_str(),
            subject.hex()
        )
    }

    /// The directory of `name`'s referrers index objects, with a slash; a digest algorithm's
    /// directory under it lists the subjects.
    pub fn referrers_index_dir(&self, name: &Name) -> String {
        format!("{}/index/referrers/{name}/_subjects/", self.edge)
    }

    /// The state of the indexes' rebuild.
    pub fn index_rebuild(&self) -> String {
        format!("{}/index/rebuild.json", self.edge)
    }

    pub fn blob_data(&self, digest: &Digest) -> String {
        let hex = digest.hex();
        format!(
            "{}/blobs/{}/{}/{hex}/data",
            self.root,
            digest.algorithm().as_str(),
            &hex[..2]
        )
    }

    pub fn repositories(&self) -> String {
        format!("{}/repositories/", self.root)
    }

    /// The directory of a repository (or of an intermediate directory of names), with a slash.
    pub fn repository_dir(&self, path: &str) -> String {
        format!("{}/repositories/{path}/", self.root)
    }

    pub fn layer_link(&self, name: &Name, digest: &Digest) -> String {
        format!(
            "{}/repositories/{name}/_layers/{}/{}/link",
            self.root,
            digest.algorithm().as_str(),
            digest.hex()
        )
    }

    pub fn manifest_revision_link(&self, name: &Name, digest: &Digest) -> String {
        format!(
            "{}/repositories/{name}/_manifests/revisions/{}/{}/link",
            self.root,
            digest.algorithm().as_str(),
            digest.hex()
        )
    }

    /// The directory of a repository's manifest revisions for one algorithm, with a slash.
    pub fn manifest_revisions_dir(&self, name: &Name, algorithm: Algorithm) -> String {
        format!(
            "{}/repositories/{name}/_manifests/revisions/{}/",
            self.root,
            algorithm.as_str()
        )
    }

    pub fn tags_dir(&self, name: &Name) -> String {
        format!("{}/repositories/{name}/_manifests/tags/", self.root)
    }

    /// The tag's history entry for `digest`, which distribution writes beside `current`.
    pub fn tag_index_link(&self, name: &Name, tag: &Tag, digest: &Digest) -> String {
        format!(
            "{}/repositories/{name}/_manifests/tags/{tag}/index/{}/{}/link",
            self.root,
            digest.algorithm().as_str(),
            digest.hex()
        )
    }

    pub fn tag_current_link(&self, name: &Name, tag: &Tag) -> String {
        format!(
            "{}/repositories/{name}/_manifests/tags/{tag}/current/link",
            self.root
        )
    }
}

/// The directories under the repositories' directory `path` ("" for the top) that may lead to
/// repositories: `dirs` (its listing) that are no `_` directory of distribution's and make a
/// valid name with `path`.
pub fn child_paths(path: &str, dirs: Vec<String>) -> impl Iterator<Item = String> + '_ {
    dirs.into_iter()
        .filter(|d| !d.starts_with('_'))
        .map(move |dir| {
            if path.is_empty() {
                dir
            } else {
                format!("{path}/{dir}")
            }
        })
        .filter(|child| child.parse::<Name>().is_ok())
}

/// Reads a `link` file: exactly one digest, optionally followed by whitespace.
pub fn parse_link(bytes: &[u8]) -> Option<Digest> {
    std::str::from_utf8(bytes).ok()?.trim_end().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn keys_match_distribution() {
        let l = Layout::new("/origin");
        let name: Name = "team/app".parse().unwrap();
        let digest: Digest = format!("sha256:{HEX}").parse().unwrap();
        let tag: Tag = "v1".parse().unwrap();
        let root = "origin/docker/registry/v2";
        assert_eq!(
            l.blob_data(&digest),
            format!("{root}/blobs/sha256/e3/{HEX}/data")
        );
        assert_eq!(
            l.layer_link(&name, &digest),
            format!("{root}/repositories/team/app/_layers/sha256/{HEX}/link")
        );
        assert_eq!(
            l.manifest_revision_link(&name, &digest),
            format!("{root}/repositories/team/app/_manifests/revisions/sha256/{HEX}/link")
        );
        assert_eq!(
            l.tag_current_link(&name, &tag),
            format!("{root}/repositories/team/app/_manifests/tags/v1/current/link")
        );
        assert_eq!(
            l.tags_dir(&name),
            format!("{root}/repositories/team/app/_manifests/tags/")
        );
        assert_eq!(l.repositories(), format!("{root}/repositories/"));
        assert_eq!(
            l.referrers_index(&name, &digest),
            format!(
                "origin/registry-edge/index/referrers/team/app/_subjects/sha256/{HEX}/list.json"
            )
        );
        assert_eq!(
            l.catalog_shard(HEX),
            format!("origin/registry-edge/index/catalog/{HEX}.json")
        );
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            Layout::new("").repositories(),
            "docker/registry/v2/repositories/"
        );
        assert_eq!(
            Layout::new("/").repositories(),
            "docker/registry/v2/repositories/"
        );
        assert_eq!(
            Layout::new("a/b/").repositories(),
            "a/b/docker/registry/v2/repositories/"
        );
    }

    #[test]
    fn links() {
        let text = format!("sha256:{HEX}");
        assert_eq!(parse_link(text.as_bytes()).unwrap().to_string(), text);
        assert_eq!(
            parse_link(format!("{text}\n").as_bytes())
                .unwrap()
                .to_string(),
            text
        );
        assert!(parse_link(b"sha256:nothex").is_none());
        assert!(parse_link(b"").is_none());
    }
}
