//! The data directory is Ward's alone: every directory in it 0700, every
//! file 0600, whatever the umask Ward was started with.

use std::io;
use std::path::Path;

/// Mode of every directory under the data directory (and of itself).
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file under the data directory.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` if it is missing and makes it and everything already in
/// it readable by Ward's user only; then sets the process umask to `077`,
/// so that what the store, the audit journal and the compiled-code cache
/// create later is born that way. (The umask is the only hold on files a
/// library such as sled creates itself.)
///
/// Symbolic links are left as they are and not followed.
pub fn secure(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use rustix::fs::Mode;
        rustix::process::umask(Mode::from_raw_mode(0o077));
    }
    std::fs::create_dir_all(dir)?;
    tighten(dir)
}

#[cfg(unix)]
fn tighten(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;

    set_mode(dir, DIR_MODE)?;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                set_mode(&path, DIR_MODE)?;
                pending.push(path);
            } else if kind.is_file() {
                let mode = entry.metadata()?.permissions().mode() & 0o777;
                if mode != FILE_MODE {
                    set_mode(&path, FILE_MODE)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot set the mode of `{}`: {err}", path.display()),
        )
    })
}

#[cfg(not(unix))]
fn tighten(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// This replica's id, kept in `dir` so that a restarted replica is the
/// same replica: its usage row and its audit journal stay its own. Made
/// on first use.
pub fn replica_id(dir: &Path) -> io::Result<String> {
    let path = dir.join("replica-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            let valid = !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if valid {
                return Ok(id.to_string());
            }
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{}` does not hold a replica id", path.display()),
            ))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let id = format!("r-{}", crate::ids::next_ulid().to_string().to_lowercase());
            let temporary = dir.join("replica-id.new");
            std::fs::write(&temporary, format!("{id}\n"))?;
            std::fs::rename(&temporary, &path)?;
            Ok(id)
        }
        Err(err) => Err(err),
    }
}
