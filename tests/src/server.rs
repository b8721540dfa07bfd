//! Starting the real `vestibule` binary.
