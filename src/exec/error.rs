//! The one error type of the executor and the tool commands: each format
//! or transport module's own typed error, with where it happened (the
//! expression's `FILE:LINE:COL`, then the path or URI it was working on),
//! and the exit status it ends the process with. `main` renders it once:
//! `error: ` and the error's text, or rendered diagnostics as they are.

use crate::{archive, cache, cpio, diff, ext, hostdir, sign, swap, transport, uri};
use std::fmt;
use std::io;

/// Where a failure happened: the expression's `FILE:LINE:COL` (or what a
/// tool command was working on), then, if any, the path or URI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    pub at: String,
    pub what: Option<String>,
}

impl Place {
    /// `at`, then `what` after a colon.
    pub fn new(at: impl fmt::Display, what: impl fmt::Display) -> Place {
        Place {
            at: at.to_string(),
            what: Some(what.to_string()),
        }
    }

    /// No place: the error names what it is about itself.
    pub fn none() -> Place {
        Place::default()
    }

    /// `at` alone: the expression as a whole, or a path.
    pub fn at(at: impl fmt::Display) -> Place {
        Place {
            at: at.to_string(),
            what: None,
        }
    }
}

/// The place as the error's text starts: `AT: WHAT: `, `AT: `, or nothing.
impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() && self.what.is_none() {
            return Ok(());
        }
        f.write_str(&self.at)?;
        if let Some(w) = &self.what {
            write!(f, ": {w}")?;
        }
        f.write_str(": ")
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Container-file diagnostics, already rendered with their locations.
    #[error("{0}")]
    Diagnostics(String),
    /// The command line or the container file asks for what cannot be done.
    #[error("{0}")]
    Usage(String),
    /// A run failed, said in words.
    #[error("{0}")]
    Run(String),
    /// Stopped by a signal: the exit status says which (128 + its number).
    #[error("{message}")]
    Stopped { code: u8, message: String },
    /// The same failure, ending with exit status 2: a refused command line
    /// or key, or trouble as `diff` reports it when it could not compare.
    #[error(transparent)]
    Refused(Box<Error>),
    #[error("{place}{source}")]
    Io { place: Place, source: io::Error },
    #[error("{place}{source}")]
    Ext {
        place: Place,
        source: Box<ext::Error>,
    },
    #[error("{place}{source}")]
    Cpio {
        place: Place,
        source: Box<cpio::Error>,
    },
    #[error("{place}{source}")]
    Archive {
        place: Place,
        source: Box<archive::Error>,
    },
    #[error("{place}{source}")]
    Transfer {
        place: Place,
        source: Box<transport::TransferError>,
    },
    #[error("{place}{source}")]
    Patch {
        place: Place,
        source: Box<diff::ApplyError>,
    },
    #[error("{place}{source}")]
    PatchText {
        place: Place,
        source: Box<diff::ParseError>,
    },
    #[error("{place}{source}")]
    Swap {
        place: Place,
        source: Box<swap::Error>,
    },
    #[error("{place}{source}")]
    HostDir {
        place: Place,
        source: Box<hostdir::Error>,
    },
    #[error("{place}{source}")]
    Cache {
        place: Place,
        source: Box<cache::CacheError>,
    },
    #[error("{place}{source}")]
    Uri {
        place: Place,
        source: Box<uri::UriError>,
    },
    #[error("{place}{source}")]
    Key {
        place: Place,
        source: Box<sign::KeyError>,
    },
    #[error("{place}{source}")]
    Sign {
        place: Place,
        source: Box<sign::SignError>,
    },
    #[error("{place}{source}")]
    Verify {
        place: Place,
        source: Box<sign::VerifyError>,
    },
    #[error("{place}{source}")]
    Tree {
        place: Place,
        source: Box<super::worktree::TreeError>,
    },
}

impl Error {
    /// A run failed (exit status 1), said in words.
    pub fn run(message: impl Into<String>) -> Error {
        Error::Run(message.into())
    }

    /// A usage or container-file error (exit status 2).
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }

    /// Container-file diagnostics, already rendered with their locations.
    pub fn diagnostics(rendered: String) -> Error {
        Error::Diagnostics(rendered)
    }

    /// A module's typed error that names what it is about itself.
    pub fn failed(cause: impl Cause) -> Error {
        cause.at(Place::none())
    }

    /// The same, ending with exit status 2 (a refused command line or key).
    pub fn refused(cause: impl Cause) -> Error {
        Error::Refused(Box::new(cause.at(Place::none())))
    }

    /// A module's typed error where it happened.
    pub fn at(place: Place, cause: impl Cause) -> Error {
        cause.at(place)
    }

    /// The process's exit status: 1 when a run failed, 2 for usage and
    /// container-file errors.
    pub fn code(&self) -> u8 {
        match self {
            Error::Diagnostics(_) | Error::Usage(_) | Error::Refused(_) => 2,
            Error::Stopped { code, .. } => *code,
            _ => 1,
        }
    }
}

/// A module's typed error, which becomes an [`Error`] once its place is
/// known.
pub trait Cause {
    fn at(self, place: Place) -> Error;
}

impl Cause for io::Error {
    fn at(self, place: Place) -> Error {
        Error::Io {
            place,
            source: self,
        }
    }
}

/// The module errors, boxed in [`Error`]: some are large, and a `Result`
/// carrying one should stay small.
macro_rules! causes {
    ($($variant:ident: $ty:ty,)+) => {
        $(impl Cause for $ty {
            fn at(self, place: Place) -> Error {
                Error::$variant { place, source: Box::new(self) }
            }
        })+
    };
}

causes! {
    Ext: ext::Error,
    Cpio: cpio::Error,
    Archive: archive::Error,
    Transfer: transport::TransferError,
    Patch: diff::ApplyError,
    PatchText: diff::ParseError,
    Swap: swap::Error,
    HostDir: hostdir::Error,
    Cache: cache::CacheError,
    Uri: uri::UriError,
    Key: sign::KeyError,
    Sign: sign::SignError,
    Verify: sign::VerifyError,
    Tree: super::worktree::TreeError,
}

/// Places a typed error: `result.at(place)?`.
pub trait ResultExt<T> {
    fn at(self, place: Place) -> Result<T, Error>;
}

impl<T, E: Cause> ResultExt<T> for Result<T, E> {
    fn at(self, place: Place) -> Result<T, Error> {
        self.map_err(|e| e.at(place))
    }
}
