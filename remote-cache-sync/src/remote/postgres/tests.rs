//! Unit tests of the PostgreSQL remote that need no server.

use super::tls::libpq_tls_parameters;
use super::*;
use std::path::PathBuf;

#[test]
fn prefix_is_validated() {
    assert!(Sql::new("rcs_").is_ok());
    assert!(Sql::new("app2_").is_ok());
    for bad in [
        "",
        "Rcs_",
        "1abc",
        "a-b",
        "a b",
        "x; drop table y",
        "é",
        &"a".repeat(41),
    ] {
        assert!(
            matches!(Sql::new(bad), Err(Error::InvalidInput(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn connection_strings_are_redacted() {
    assert_eq!(
        redact_connection_string("postgres://u:pw@127.0.0.1:5432/db"),
        "postgres://u:***@127.0.0.1:5432/db"
    );
    assert_eq!(
        redact_connection_string("postgresql://u:p%40ss@h/db?sslmode=disable"),
        "postgresql://u:***@h/db?sslmode=disable"
    );
    assert_eq!(
        redact_connection_string("postgres://u@h/db"),
        "postgres://u@h/db"
    );
    assert_eq!(
        redact_connection_string("host=h user=u password=secret dbname=d"),
        "host=h user=u password=*** dbname=d"
    );
}

#[test]
fn libpq_tls_parameters_are_understood() {
    assert_eq!(
        libpq_tls_parameters(
            "postgres://u:p@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20x.pem"
        ),
        (
            "postgres://u:p@h/db?sslmode=require".to_owned(),
            Some(PathBuf::from("/tmp/ca x.pem"))
        )
    );
    assert_eq!(
        libpq_tls_parameters("postgres://u@h/db?sslrootcert=/ca.pem"),
        (
            "postgres://u@h/db".to_owned(),
            Some(PathBuf::from("/ca.pem"))
        )
    );
    assert_eq!(
        libpq_tls_parameters("postgres://u@h/db?sslmode=disable"),
        ("postgres://u@h/db?sslmode=disable".to_owned(), None)
    );
    assert_eq!(
        libpq_tls_parameters("host=h sslmode=verify-ca sslrootcert=/ca.pem user=u"),
        (
            "host=h sslmode=require user=u".to_owned(),
            Some(PathBuf::from("/ca.pem"))
        )
    );
    assert_eq!(
        libpq_tls_parameters("host=h password='a  b'"),
        ("host=h password='a  b'".to_owned(), None)
    );
}

#[test]
fn cursors_are_validated() {
    assert_eq!(parse_cursor(None).unwrap(), 0);
    assert_eq!(parse_cursor(Some(&Cursor::new("42"))).unwrap(), 42);
    for bad in ["", "-1", "x", "1.5", "99999999999999999999"] {
        assert!(parse_cursor(Some(&Cursor::new(bad))).is_err(), "{bad:?}");
    }
}

#[test]
fn nul_detection() {
    assert!(contains_nul(&serde_json::json!({"a": ["x\u{0}"]})));
    assert!(contains_nul(&serde_json::json!({"a\u{0}": 1})));
    assert!(!contains_nul(&serde_json::json!({"a": ["x", 1, null]})));
}
