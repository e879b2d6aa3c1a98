//! The core crate's error type, and the precise reasons it carries.
//!
//! Messages are written for the person who pasted the value: they say what is wrong
//! and how to fix it, and never repeat a secret.

/// Every way a core operation can fail.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A pasted bearer token is not well-formed.
    #[error(transparent)]
    TokenFormat(#[from] TokenFormatError),
    /// An `Authorization` header could not be read.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// A list query (`filter`, `sort`, `fields`, `size`, `offset`) is not valid.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A field of a request is not acceptable; `field` names it.
    #[error("{field}: {reason}")]
    Invalid {
        /// The JSON property or CLI flag at fault.
        field: &'static str,
        /// What is wrong with it and how to fix it.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator is unavailable")]
    Random,
    /// Password hashing failed (never includes the password).
    #[error("password hashing failed")]
    PasswordHash,
}

/// Why a string is not a well-formed bearer token.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum TokenFormatError {
    /// Nothing was given.
    #[error("the bearer token is empty")]
    Empty,
    /// Spaces, tabs or newlines before or after the token (a common copy-paste slip).
    #[error("the bearer token has leading or trailing whitespace; remove it")]
    SurroundingWhitespace,
    /// A character outside `[A-Za-z0-9]`.
    #[error(
        "the bearer token has a character that is not allowed at position {position} ({found}); tokens contain only letters and digits"
    )]
    InvalidCharacter {
        /// 1-based position of the first offending character.
        position: usize,
        /// A description of it (never a letter or digit of the token).
        found: String,
    },
    /// Too short or too long.
    #[error(
        "the bearer token has the wrong length: {found} characters, expected {expected}; it may have been truncated or joined with other text"
    )]
    WrongLength {
        /// Length received.
        found: usize,
        /// Length of every keygate bearer token.
        expected: usize,
    },
    /// Does not start with the keygate prefix.
    #[error("the bearer token has the wrong prefix: keygate tokens start with \"{expected}\"")]
    WrongPrefix {
        /// The prefix every token starts with.
        expected: &'static str,
    },
    /// The trailing checksum does not match the rest.
    #[error(
        "the bearer token has a bad checksum: it was probably mistyped or altered; copy it again"
    )]
    ChecksumMismatch,
}

/// Why an `Authorization` header could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum CredentialError {
    /// The header is present but empty.
    #[error("the Authorization header is empty; send \"Authorization: Bearer <token>\"")]
    EmptyHeader,
    /// The header value is not visible ASCII.
    #[error("the Authorization header contains bytes that are not printable ASCII")]
    NotAscii,
    /// A scheme other than Bearer or LMv1.
    #[error(
        "unsupported authorization scheme; use \"Bearer <token>\" or \"LMv1 <accessId>:<signature>:<epochMillis>\""
    )]
    UnsupportedScheme,
    /// `Bearer` with nothing after it.
    #[error("no token after \"Bearer\"; send \"Authorization: Bearer <token>\"")]
    MissingBearerToken,
    /// The bearer token is malformed.
    #[error(transparent)]
    Token(#[from] TokenFormatError),
    /// The LMv1 credential is malformed; the message says which part.
    #[error("malformed LMv1 credential: {0}")]
    Lmv1(&'static str),
}

/// Why a list query was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum QueryError {
    /// `size` outside 1..=1000 or not a number.
    #[error("size must be a whole number from 1 to {max}")]
    Size {
        /// The largest page size accepted.
        max: usize,
    },
    /// `offset` negative or not a number.
    #[error("offset must be a whole number, 0 or more")]
    Offset,
    /// A filter term names a field that cannot be filtered.
    #[error("cannot filter on \"{field}\"; fields that can be filtered: {allowed}")]
    UnknownFilterField {
        /// The field named (truncated).
        field: String,
        /// The fields that can be filtered, comma-separated.
        allowed: String,
    },
    /// The filter expression does not parse.
    #[error(
        "bad filter syntax: {reason}; write terms as field<op>value joined by commas, with ops : !: ~ !~ > < >: <: (fields that can be filtered: {allowed})"
    )]
    FilterSyntax {
        /// What went wrong.
        reason: String,
        /// The fields that can be filtered, comma-separated.
        allowed: String,
    },
    /// A numeric field was compared with something that is not a number.
    #[error("filter on \"{field}\" needs a whole number")]
    FilterNotNumber {
        /// The field named.
        field: String,
    },
    /// `sort` names an unknown field or is malformed.
    #[error("cannot sort by \"{field}\"; write sort=+field or sort=-field with one of: {allowed}")]
    Sort {
        /// The field named (truncated).
        field: String,
        /// The fields that can be sorted by.
        allowed: String,
    },
    /// `fields` names an unknown property.
    #[error("unknown field \"{field}\" in fields; properties: {allowed}")]
    Fields {
        /// The name given (truncated).
        field: String,
        /// The properties of the resource.
        allowed: String,
    },
}
