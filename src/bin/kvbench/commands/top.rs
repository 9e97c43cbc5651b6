//! `kvbench top`: watches a running server's threads live. One thread
//! reads `stats` and `stats threads` every interval, another the keys;
//! the main thread takes both in, in order, and draws the full-screen view
//! (or writes plain text). Reading off the main thread keeps the keys
//! answered while a lost server makes readings wait for their timeout.
//! A server that is lost after a good reading is retried for as long as
//! top runs; one never reached makes top fail when it ends.

use std::io::{self, IsTerminal, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::run::endpoint;
use crate::cli::TopArgs;
use crate::measure::snapshot::{Reader, Snapshot};
use crate::net::Endpoint;
use crate::view::terminal::Screen;
use crate::view::watch::Watch;
use crate::view::{plain, screen};

/// What the main thread waits for.
enum Message {
    /// A reading of the server, or why it failed.
    Reading(Result<Snapshot, String>),
    /// The terminal changed size.
    Redraw,
    /// A quit key, or SIGINT, SIGTERM or SIGHUP.
    Quit,
}

/// Runs `kvbench top`.
pub fn top(args: &TopArgs) -> Result<()> {
    // top sends no load, only `stats`: any address may be watched.
    let server = endpoint(
        &args.server,
        true,
        args.security.trust(),
        args.security.auth.clone(),
        false,
    )?;
    let interval = Duration::from_secs_f64(args.interval);
    let (tx, rx) = mpsc::channel();
    forward_signals(tx.clone())?;
    spawn_reader(server, interval, tx.clone());
    let mut watch = Watch::new(args.server.clone(), interval);
    if args.plain || !io::stdout().is_terminal() {
        plain_text(&rx, &mut watch, args.count)?;
    } else {
        full_screen(&rx, tx, &mut watch, args.count)?;
    }
    match watch.lost() {
        Some(lost) if !watch.connected() => {
            bail!("cannot connect to {}: {}", watch.server, lost.error)
        }
        _ => Ok(()),
    }
}

/// Counts refreshes: every reading but a first good one, which is only
/// the baseline of the rates.
struct Refreshes {
    first: bool,
    done: u64,
    limit: Option<u64>,
}

impl Refreshes {
    fn new(limit: Option<u64>) -> Refreshes {
        Refreshes {
            first: true,
            done: 0,
            limit,
        }
    }

    /// Whether `reading` is a refresh (and counts it).
    fn count(&mut self, reading: &Result<Snapshot, String>) -> bool {
        let baseline = self.first && reading.is_ok();
        self.first = false;
        self.done += u64::from(!baseline);
        !baseline
    }

    fn finished(&self) -> bool {
        self.limit.is_some_and(|n| self.done >= n)
    }
}

/// One block of text per refresh on stdout.
fn plain_text(rx: &Receiver<Message>, watch: &mut Watch, count: Option<u64>) -> Result<()> {
    let mut refreshes = Refreshes::new(count);
    for message in rx {
        match message {
            Message::Reading(reading) => {
                let refresh = refreshes.count(&reading);
                watch.record(reading);
                if refresh && !print(&plain::render(watch))? {
                    return Ok(());
                }
                if refreshes.finished() {
                    return Ok(());
                }
            }
            Message::Redraw => {}
            Message::Quit => return Ok(()),
        }
    }
    Ok(())
}

/// The full-screen view, drawn at each reading and resize.
fn full_screen(
    rx: &Receiver<Message>,
    tx: Sender<Message>,
    watch: &mut Watch,
    count: Option<u64>,
) -> Result<()> {
    let mut screen = Screen::enter().context("cannot take over the terminal")?;
    spawn_keys(tx);
    let mut refreshes = Refreshes::new(count);
    screen.draw(|f| screen::draw(f, watch))?;
    for message in rx {
        match message {
            Message::Reading(reading) => {
                refreshes.count(&reading);
                watch.record(reading);
            }
            Message::Redraw => {}
            Message::Quit => break,
        }
        screen.draw(|f| screen::draw(f, watch))?;
        if refreshes.finished() {
            break;
        }
    }
    Ok(())
}

/// Writes `text` to stdout; false when the reader has gone (`| head`).
fn print(text: &str) -> Result<bool> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        written => written.context("writing to stdout").map(|()| true),
    }
}

/// Reads the server now and then every `interval` (a reading that takes
/// longer skips the ticks it missed), until the main thread is gone.
fn spawn_reader(server: Endpoint, interval: Duration, tx: Sender<Message>) {
    // A lost or stopped server must not hold a reading for long.
    let timeout = interval.clamp(Duration::from_secs(1), Duration::from_secs(5));
    let mut reader = Reader::new(server, timeout);
    thread::spawn(move || {
        let mut next = Instant::now();
        loop {
            let reading = reader.take().map_err(|e| format!("{e:#}"));
            if tx.send(Message::Reading(reading)).is_err() {
                return;
            }
            let now = Instant::now();
            while next <= now {
                next += interval;
            }
            thread::sleep(next - now);
        }
    });
}

/// Sends `Quit` on q, Q, Esc or Ctrl-C (raw mode turns Ctrl-C into a key),
/// and `Redraw` on a resize.
fn spawn_keys(tx: Sender<Message>) {
    thread::spawn(move || loop {
        let message = match event::read() {
            Ok(Event::Key(key)) if quits(&key) => Message::Quit,
            Ok(Event::Resize(..)) => Message::Redraw,
            Ok(_) => continue,
            // No terminal to read keys from any more: nothing to watch for.
            Err(_) => Message::Quit,
        };
        if tx.send(message).is_err() {
            return;
        }
    });
}

fn quits(key: &KeyEvent) -> bool {
    key.kind == KeyEventKind::Press
        && match key.code {
            KeyCode::Char('q' | 'Q') | KeyCode::Esc => true,
            KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

/// SIGINT, SIGTERM and SIGHUP quit as `q` does, so that the terminal is
/// given back when top is stopped from outside too.
fn forward_signals(tx: Sender<Message>) -> Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).context("signal handlers")?;
    thread::spawn(move || {
        for _ in signals.forever() {
            if tx.send(Message::Quit).is_err() {
                return;
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quit_keys() {
        let key = |code, modifiers| KeyEvent::new(code, modifiers);
        assert!(quits(&key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(quits(&key(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(quits(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!quits(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!quits(&key(KeyCode::Char('x'), KeyModifiers::NONE)));
    }

    #[test]
    fn the_first_good_reading_is_no_refresh() {
        let reading = || {
            Ok(Snapshot {
                at: Instant::now(),
                stats: Default::default(),
                threads: None,
                stages: None,
            })
        };
        let mut r = Refreshes::new(Some(2));
        assert!(!r.count(&reading()));
        assert!(r.count(&reading()));
        assert!(!r.finished());
        assert!(r.count(&Err("lost".into())));
        assert!(r.finished());
        // A first reading that fails is shown, and counts.
        let mut r = Refreshes::new(None);
        assert!(r.count(&Err("lost".into())));
        assert!(r.count(&reading()));
        assert!(!r.finished());
    }
}
