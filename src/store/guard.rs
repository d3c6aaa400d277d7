//! The store step's last line of defence against a damaged file: the database library
//! (redb) decodes some bytes with `unwrap()` — text values and table type names as
//! UTF-8 — so a page damaged in the wrong place panics inside it instead of returning
//! an error. [`guarded`] runs a command that reads stores and turns such a panic into
//! [`StoreError::Corrupt`] (one line, exit 2). A panic anywhere else is a bug in
//! lagtrace and goes on being one: it is printed and unwinds as before.
//!
//! redb aborts a write transaction that is dropped by unwinding, so a panic while
//! pruning leaves the file as it was.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Mutex, Once};

use super::StoreError;

/// What the last panic inside the database library said, and where.
static LAST: Mutex<Option<String>> = Mutex::new(None);
static HOOK: Once = Once::new();

/// Whether a panic at `file` (its source path, as the panic location gives it) is
/// inside the database library rather than in lagtrace.
fn in_database_library(file: &str) -> bool {
    file.split(['/', '\\'])
        .any(|part| part.starts_with("redb-"))
}

/// Installs, once, a panic hook that keeps the database library's panics quiet (they
/// become one error line) and passes every other panic to the previous hook.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let Some(at) = info.location().filter(|l| in_database_library(l.file())) else {
                return previous(info);
            };
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            let file = at.file().rsplit(['/', '\\']).next().unwrap_or(at.file());
            let said = format!("{message} (redb {file}:{})", at.line());
            *LAST.lock().unwrap_or_else(|e| e.into_inner()) = Some(said);
        }));
    });
}

/// Runs `read`, which reads the stores at `paths`; a panic in the database library
/// while it runs (on this thread or a scoped thread it joins) becomes
/// [`StoreError::Corrupt`] naming the stores.
pub fn guarded<T, E: From<StoreError>>(
    paths: &[PathBuf],
    read: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    install_hook();
    match panic::catch_unwind(AssertUnwindSafe(read)) {
        Ok(result) => result,
        Err(payload) => {
            let Some(said) = LAST.lock().unwrap_or_else(|e| e.into_inner()).take() else {
                panic::resume_unwind(payload);
            };
            let path = match paths {
                [one] => one.clone(),
                many => PathBuf::from(
                    many.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            };
            Err(StoreError::Corrupt {
                path,
                detail: format!("a damaged page could not be decoded: {said}"),
            }
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_panics_inside_the_database_library_are_taken_for_damage() {
        assert!(in_database_library(
            "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/redb-4.5.0/src/types.rs"
        ));
        assert!(!in_database_library("src/store/events.rs"));
        assert!(!in_database_library("/home/me/redb_tools/src/lib.rs"));
    }

    #[test]
    fn a_panic_of_lagtrace_itself_still_unwinds() {
        let caught = panic::catch_unwind(|| {
            guarded::<(), StoreError>(&[PathBuf::from("x.redb")], || panic!("a bug"))
        });
        assert!(
            caught.is_err(),
            "a bug must not be reported as a damaged store"
        );
    }

    #[test]
    fn the_result_of_a_read_that_does_not_panic_is_passed_on() {
        let r = guarded::<u32, StoreError>(&[PathBuf::from("x.redb")], || Ok(7));
        assert_eq!(r.unwrap(), 7);
    }
}
