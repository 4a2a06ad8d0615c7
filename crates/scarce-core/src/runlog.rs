//! The CSV log of a training run: one row per step, first column the step, so that a
//! resumed run continues the same file.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// An open run log.
#[derive(Debug)]
pub struct RunLog {
    path: PathBuf,
    file: std::fs::File,
}

impl RunLog {
    /// Opens `path` for appending. `resume_from: None` starts a new file with `header`;
    /// `Some(step)` keeps the header and the rows of steps `<= step` (rows written after the
    /// checkpoint a run resumes from are redone, not duplicated), rewriting the file
    /// atomically.
    pub fn open(path: &Path, header: &str, resume_from: Option<usize>) -> Result<RunLog> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let text = match resume_from {
            None => format!("{header}\n"),
            Some(step) => {
                let old = std::fs::read_to_string(path).map_err(io)?;
                let kept: Vec<&str> = old
                    .lines()
                    .enumerate()
                    .filter(|(i, l)| {
                        *i == 0
                            || l.split(',')
                                .next()
                                .and_then(|s| s.parse::<usize>().ok())
                                .is_some_and(|s| s <= step)
                    })
                    .map(|(_, l)| l)
                    .collect();
                kept.join("\n") + "\n"
            }
        };
        let tmp = path.with_extension("csv.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(RunLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one row (without its newline).
    pub fn row(&mut self, line: &str) -> Result<()> {
        writeln!(self.file, "{line}").map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Flushes rows to the file (before a checkpoint that covers them).
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_keeps_rows_up_to_the_checkpoint() {
        let dir = std::env::temp_dir().join(format!("scarce-runlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("log.csv");
        let mut log = RunLog::open(&p, "step,loss", None).unwrap();
        for s in 1..=5 {
            log.row(&format!("{s},0.{s}")).unwrap();
        }
        log.flush().unwrap();
        drop(log);
        let mut log = RunLog::open(&p, "step,loss", Some(3)).unwrap();
        log.row("4,0.9").unwrap();
        log.flush().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "step,loss\n1,0.1\n2,0.2\n3,0.3\n4,0.9\n");
        assert!(RunLog::open(&dir.join("absent.csv"), "h", Some(1)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
