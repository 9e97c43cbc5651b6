//! Taking the terminal over for the full-screen view, and giving it back
//! as it was: on the way out, on an error, and on a panic.

use std::io::{self, Stdout};
use std::sync::Once;

use crossterm::cursor;
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::{Frame, Terminal};

/// The terminal in raw mode on the alternate screen, cursor hidden.
/// Dropping it gives the terminal back.
pub struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    /// Takes the terminal over. First installs (once) a panic hook that
    /// gives it back before the panic message is printed, so a panic
    /// leaves a usable shell and a readable message, and then ends the
    /// process: a panic on the reading or key thread would otherwise leave
    /// the main thread drawing on a terminal it has given back.
    pub fn enter() -> io::Result<Screen> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
                std::process::exit(101);
            }));
        });
        enable_raw_mode()?;
        let entered = execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match entered {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    /// Draws one frame (ratatui redraws only the cells that changed, and
    /// follows the terminal's size).
    pub fn draw(&mut self, render: impl FnOnce(&mut Frame)) -> io::Result<()> {
        self.terminal.draw(render).map(drop)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Cursor shown, main screen back, raw mode off. Errors are ignored: a
/// terminal that cannot be written to cannot be helped either.
fn restore() {
    let _ = execute!(io::stdout(), cursor::Show, LeaveAlternateScreen);
    let _ = disable_raw_mode();
}
