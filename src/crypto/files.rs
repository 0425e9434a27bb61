//! Files that hold secrets: the data dir (0700, owned by this server's user) and files only that
//! user may read (0600): the development keyrings, a generated bootstrap password.

use std::path::Path;

use anyhow::{Context, bail};

/// Creates the data dir (0700) if needed.
pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data dir {}", dir.display()))?;
        set_mode(dir, 0o700)?;
    }
    Ok(())
}

/// Refuses a directory another user could read or change: it must be owned by this process's
/// user and closed to group and others (0700 or stricter). What a file of secrets needs around it.
#[cfg(unix)]
pub fn check_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "data dir {} is open to other users (mode {mode:o}): make it 0700 (chmod 700) before a generated bootstrap password is written there, or give IMANGOR_BOOTSTRAP_ADMIN_PASSWORD_FILE",
            dir.display()
        );
    }
    // This process's user is the owner of a file it creates (no libc call on every target).
    let probe = dir.join(format!(".owner-probe-{}", std::process::id()));
    replace_private(&probe, b"")?;
    let mine = std::fs::metadata(&probe).map(|m| m.uid());
    std::fs::remove_file(&probe).with_context(|| format!("removing {}", probe.display()))?;
    let mine = mine.with_context(|| format!("reading {}", probe.display()))?;
    if mine != meta.uid() {
        bail!(
            "data dir {} is owned by uid {}, not by this server's uid {mine}: its owner could read or replace a generated bootstrap password; chown it, or give IMANGOR_BOOTSTRAP_ADMIN_PASSWORD_FILE",
            dir.display(),
            meta.uid()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check_private_dir(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Writes `content` to a new file readable by this user only (0600), replacing any file there.
pub fn replace_private(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("replacing {}", path.display())),
    }
    write_private(path, content)
}

/// Writes `content` to a new file (none may be there) readable by this user only (0600).
pub fn write_private(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(content)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> anyhow::Result<()> {
    Ok(())
}
