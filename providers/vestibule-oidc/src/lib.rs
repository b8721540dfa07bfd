//! OpenID Connect source (in progress).
