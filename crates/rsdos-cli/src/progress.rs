//! Progress bars for long operations, and stopping them cleanly on Ctrl-C.
//!
//! [`Bars`] implements the library's [`Progress`]: a bar per phase with rate and ETA, drawn
//! on stderr when it is a terminal and `--quiet` is not given; nothing otherwise. Its
//! [`should_stop`](Progress::should_stop) reports the first Ctrl-C, which the operations poll
//! between units of work: they then stop where nothing is half-written and return
//! [`rsdos::Error::Interrupted`], which `main` turns into exit status 130.
//!
//! The Ctrl-C handler is installed only by the commands that poll it (pack, repack, clean,
//! validate, backup, import, migrate, rebuild-index, optimize); the others keep the default
//! behaviour of being killed, which their writes survive (a loose object is renamed into
//! place whole, and pack bytes count only once their index rows are committed). A second
//! Ctrl-C kills any command at once, with status 130: the container still survives it, as
//! it survives a crash.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{HumanCount, ProgressBar, ProgressState, ProgressStyle};
use rsdos::{Progress, ProgressUnit};

/// Set by the first Ctrl-C.
static STOP: AtomicBool = AtomicBool::new(false);
/// The bar being drawn, so that the Ctrl-C handler can print above it.
static CURRENT: Mutex<Option<(ProgressBar, ProgressUnit)>> = Mutex::new(None);
static INSTALL: Once = Once::new();

/// Exit status of a command stopped by Ctrl-C: 128 + SIGINT, as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Test hook: after this many units of progress, the operation announces on stderr that it
/// waits, and waits (at most a minute) for Ctrl-C, so that a test can interrupt it at a
/// known point without timing. Not for users.
const TEST_WAIT_VAR: &str = "RSDOS_TEST_WAIT_FOR_INTERRUPT";
/// The line printed by the test hook.
pub const TEST_WAIT_LINE: &str = "rsdos: waiting for Ctrl-C (test hook)";

fn current() -> MutexGuard<'static, Option<(ProgressBar, ProgressUnit)>> {
    CURRENT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Prints a line on stderr above the bar, if one is drawn.
fn eprint_above_bar(message: &str) {
    let bar = current().as_ref().map(|(bar, _)| bar.clone());
    let print = || {
        let _ = writeln!(std::io::stderr().lock(), "{message}");
    };
    match bar {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// Makes Ctrl-C ask the running operation to stop at its next safe point (and a second one
/// kill the process). Installing twice is harmless.
pub fn install_ctrlc_handler() {
    INSTALL.call_once(|| {
        // ctrlc runs this on a thread of its own, not in the signal handler: it may print.
        let result = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                eprint_above_bar("interrupted again: quitting at once");
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
            eprint_above_bar(
                "stopping at the next safe point... (press Ctrl-C again to quit at once)",
            );
        });
        if let Err(e) = result {
            // Without the handler Ctrl-C kills the process, which the container survives.
            let _ = writeln!(std::io::stderr(), "warning: cannot handle Ctrl-C: {e}");
        }
    });
}

/// Finishes a bar left drawn by an operation that stopped early (an error, Ctrl-C), so that
/// the error message starts on a line of its own.
pub fn abandon() {
    if let Some((bar, unit)) = current().take() {
        bar.set_style(final_style(unit, STOP.load(Ordering::SeqCst)));
        bar.abandon();
    }
}

/// Progress bars on stderr, one per phase of an operation; see the module docs.
#[derive(Debug)]
pub struct Bars {
    draw: bool,
    done: AtomicU64,
    wait_at: Option<u64>,
    waited: AtomicBool,
}

impl Bars {
    /// Bars drawn only if `draw` (stderr is a terminal and the user did not ask for quiet).
    pub fn new(draw: bool) -> Self {
        Bars {
            draw,
            done: AtomicU64::new(0),
            wait_at: std::env::var(TEST_WAIT_VAR)
                .ok()
                .and_then(|v| v.parse().ok()),
            waited: AtomicBool::new(false),
        }
    }

    /// Bars for `global`: drawn on a terminal unless `--quiet`.
    pub fn for_terminal(quiet: bool) -> Self {
        use std::io::IsTerminal;
        Self::new(!quiet && std::io::stderr().is_terminal())
    }

    fn test_hook(&self, done: u64) {
        let Some(at) = self.wait_at else { return };
        if done < at || self.waited.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = writeln!(std::io::stderr().lock(), "{TEST_WAIT_LINE}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !STOP.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Objects per second, rounded (indicatif's `{per_sec}` prints every decimal).
fn rate(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{}/s", HumanCount(state.per_sec().round() as u64));
}

fn styled(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", rate)
        .progress_chars("=> ")
}

/// The style of a bar while its phase runs: counts, rate and ETA (or a spinner when the total
/// is not known).
fn style(unit: ProgressUnit, known_total: bool) -> ProgressStyle {
    styled(match (unit, known_total) {
        (ProgressUnit::Objects, true) => {
            "{msg:<29} [{wide_bar}] {human_pos}/{human_len} objects  {rate}  ETA {eta}"
        }
        (ProgressUnit::Bytes, true) => {
            "{msg:<29} [{wide_bar}] {binary_bytes}/{binary_total_bytes}  {binary_bytes_per_sec}  ETA {eta}"
        }
        (ProgressUnit::Objects, false) => "{spinner} {msg:<27} {human_pos} objects  {rate}",
        (ProgressUnit::Bytes, false) => {
            "{spinner} {msg:<27} {binary_bytes}  {binary_bytes_per_sec}"
        }
    })
}

/// The style a bar is left with: what was done, in how long (`stopped` after Ctrl-C).
fn final_style(unit: ProgressUnit, stopped: bool) -> ProgressStyle {
    let how = if stopped { "stopped" } else { "done" };
    styled(&match unit {
        ProgressUnit::Objects => {
            format!("{{msg:<29}} {how}: {{human_pos}} objects in {{elapsed}} ({{rate}})")
        }
        ProgressUnit::Bytes => {
            format!("{{msg:<29}} {how}: {{binary_bytes}} in {{elapsed}} ({{binary_bytes_per_sec}})")
        }
    })
}

impl Progress for Bars {
    fn start(&self, description: &str, total: u64, unit: ProgressUnit) {
        if !self.draw {
            return;
        }
        let bar = if total > 0 {
            ProgressBar::new(total)
        } else {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        };
        bar.set_style(style(unit, total > 0));
        bar.set_message(description.to_string());
        if let Some((previous, unit)) = current().replace((bar, unit)) {
            previous.set_style(final_style(unit, false));
            previous.abandon();
        }
    }

    fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if self.draw
            && let Some((bar, _)) = current().as_ref()
        {
            bar.inc(n);
        }
        self.test_hook(done);
    }

    fn finish(&self) {
        if let Some((bar, unit)) = current().take() {
            // `abandon`, not `finish`: the latter would show the bar as full after Ctrl-C.
            bar.set_style(final_style(unit, STOP.load(Ordering::SeqCst)));
            bar.abandon();
        }
    }

    fn should_stop(&self) -> bool {
        STOP.load(Ordering::SeqCst)
    }
}
