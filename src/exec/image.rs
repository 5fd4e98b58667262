//! OCI images as inputs: pulled and flattened by [`crate::oci`] into a
//! tree in the cache, which the run then reads as any archive.

use super::inputs::{Input, Inputs};
use super::log::Log;
use super::{Error, Result};
use crate::parser::plan::UriRef;

/// The flattened tree of the image `uri` names; its manifest digest
/// stands for its content. An image carries no detached signature, so a
/// run that requires signatures refuses it.
pub fn pull(inputs: &Inputs, uri: &UriRef, at: &str, log: &mut Log) -> Result<Input> {
    if inputs.trust.require_all || !inputs.trust.keys.is_empty() {
        return Err(Error::run(format!(
            "{at}: {}: an image carries no signature, and signatures are required: export its tree into an archive and sign that",
            uri.uri
        )));
    }
    let _label = crate::progress::label(format!("pulling {}", uri.uri));
    let pulled = crate::oci::pull(&uri.uri, &inputs.cache, inputs.mode)
        .map_err(|e| Error::run(format!("{at}: {e}")))?;
    log.line(&format!(
        "{at} image {} manifest=sha256:{} layers={} downloaded={} {}",
        uri.uri,
        pulled.manifest,
        pulled.layers,
        pulled.downloaded,
        if pulled.from_cache {
            "tree from cache"
        } else {
            "flattened"
        }
    ))?;
    log.line(&format!(
        "{at} image {} config {}",
        uri.uri,
        pulled.describe_config()
    ))?;
    let bytes = std::fs::metadata(&pulled.tree)
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(Input {
        path: pulled.tree,
        sha256: Some(pulled.manifest),
        bytes,
    })
}
