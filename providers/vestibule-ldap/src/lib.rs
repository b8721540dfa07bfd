//! LDAP source (in progress).
