//! README.md's shell examples, run top to bottom in one bash session against the real binary
//! serving a copy of the shipped config.json, as a newcomer would in one terminal: the README
//! cannot rot. The conventions this file enforces (README's "Tests" section says them too):
//!
//! - Every ```` ```sh ```` block runs, in order, unless the line just above it is
//!   `<!-- not run by tests/readme.rs: WHY -->` (installs, a Pi, root, etcd, cargo, a benchmark…).
//!   Other shell fences (`bash`, `shell`, `console`) are refused, so nothing escapes the test.
//! - The session runs under `set -euo pipefail`, and `curl` fails on an HTTP error
//!   (`--fail-with-body`), except in a block whose line above is
//!   `<!-- tests/readme.rs: errors on purpose -->`; there every curl command must show its output.
//! - A command ending in the comment `# → TEXT` must print exactly TEXT (with one trailing newline
//!   or none: a terminal shows both alike); each comment line `# → MORE` right below a command
//!   adds a line of its output (the first one, when the command's own line has none).
//! - The only rewrites: `127.0.0.1:8080` becomes the test server's address and
//!   `./target/release/pykv ` the binary cargo built.

mod common;
use common::*;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The whole session, server start excluded, must end within this: it takes a few seconds.
const SESSION_LIMIT: Duration = Duration::from_secs(60);
/// How long the server may take to log its address.
const START_LIMIT: Duration = Duration::from_secs(20);
/// Any one curl the examples run: a hung request fails the session instead of outliving it.
const CURL_MAX_SECONDS: u32 = 20;

const SKIP_MARK: &str = "<!-- not run by tests/readme.rs: ";
const ERRORS_MARK: &str = "<!-- tests/readme.rs: errors on purpose -->";
const EXPECT_MARK: &str = "# → ";

/// One fenced code block of README.md.
#[derive(Debug)]
struct Block {
    /// README line number (1-based) of the first line inside the fence.
    first_line: usize,
    lang: String,
    lines: Vec<String>,
    how: How,
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum How {
    Run,
    /// Run with a curl that does not fail on HTTP errors.
    RunShowingErrors,
    Skip,
}

/// One shell command of a block: one line, or several joined by quotes or a trailing `\`.
#[derive(Debug)]
struct ShellCommand {
    /// README line number of its first line.
    line: usize,
    text: String,
    /// What it must print, when README shows it with `# → `.
    expected: Option<String>,
}

/// The fenced blocks of `readme`, each with what the line above it says about running it.
fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let opening = lines[i].trim_start();
        let Some(lang) = opening.strip_prefix("```") else {
            let marker =
                lines[i].trim_start().starts_with("<!--") && lines[i].contains("tests/readme.rs");
            let above_a_block = lines
                .get(i + 1)
                .is_some_and(|l| l.trim_start().starts_with("```"));
            assert!(
                !marker || above_a_block,
                "README.md line {}: a tests/readme.rs marker must be the line just above a code block",
                i + 1
            );
            i += 1;
            continue;
        };
        let indent = lines[i].len() - opening.len();
        let above = if i > 0 { lines[i - 1].trim() } else { "" };
        let how = if let Some(why) = above.strip_prefix(SKIP_MARK) {
            let why = why.trim_end_matches("-->").trim();
            assert!(
                !why.is_empty(),
                "README.md line {i}: say why the block is not run"
            );
            How::Skip
        } else if above == ERRORS_MARK {
            How::RunShowingErrors
        } else {
            assert!(
                !above.contains("tests/readme.rs"),
                "README.md line {i}: unknown marker {above:?}"
            );
            How::Run
        };
        let first_line = i + 2;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && lines[i].trim() != "```" {
            // A block inside a list item is indented with its fence: drop that indentation.
            let spaces = lines[i].len() - lines[i].trim_start_matches(' ').len();
            body.push(lines[i][spaces.min(indent)..].to_string());
            i += 1;
        }
        assert!(
            i < lines.len(),
            "README.md line {}: unclosed code block",
            first_line - 1
        );
        blocks.push(Block {
            first_line,
            lang: lang.trim().to_string(),
            lines: body,
            how,
        });
        i += 1;
    }
    blocks
}

/// Where a shell reading a command stands at the end of a line.
#[derive(Default)]
struct Lexer {
    /// Open quotes and `$(`/`(` groups, innermost last.
    open: Vec<u8>,
    /// The line ended in `\`.
    continued: bool,
}

impl Lexer {
    /// Reads one line; returns where its comment starts, if it has one.
    fn read(&mut self, line: &str) -> Option<usize> {
        self.continued = false;
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            match self.open.last() {
                Some(b'\'') => {
                    if c == b'\'' {
                        self.open.pop();
                    }
                }
                Some(b'"') => match c {
                    b'\\' => i += 1,
                    b'"' => {
                        self.open.pop();
                    }
                    b'$' if b.get(i + 1) == Some(&b'(') => {
                        self.open.push(b'(');
                        i += 1;
                    }
                    _ => {}
                },
                _ => match c {
                    b'\\' if i + 1 == b.len() => self.continued = true,
                    b'\\' => i += 1,
                    b'\'' | b'"' | b'(' => self.open.push(c),
                    b')' if self.open.last() == Some(&b'(') => {
                        self.open.pop();
                    }
                    // A `#` starts a comment only at the start of a word.
                    b'#' if i == 0 || b[i - 1].is_ascii_whitespace() => return Some(i),
                    _ => {}
                },
            }
            i += 1;
        }
        None
    }

    fn command_ended(&self) -> bool {
        self.open.is_empty() && !self.continued
    }
}

/// The commands of a block, each with the output README shows for it.
fn commands(block: &Block) -> Vec<ShellCommand> {
    let mut commands: Vec<ShellCommand> = Vec::new();
    let mut lexer = Lexer::default();
    let mut current: Option<ShellCommand> = None;
    // The line above ended a command or showed its output: a `# → ` line here shows (more of) it.
    let mut after_command = false;
    for (n, line) in block.lines.iter().enumerate() {
        let line_no = block.first_line + n;
        let trimmed = line.trim_start();
        if current.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            let more = trimmed.strip_prefix(EXPECT_MARK.trim_end());
            match (more, commands.last_mut()) {
                (Some(more), Some(last)) if after_command => {
                    let more = more.strip_prefix(' ').unwrap_or(more).trim_end();
                    match &mut last.expected {
                        Some(expected) => {
                            expected.push('\n');
                            expected.push_str(more);
                        }
                        None => last.expected = Some(more.to_string()),
                    }
                }
                (Some(_), _) => panic!("README.md line {line_no}: `# → ` right below no command"),
                _ => after_command = false,
            }
            continue;
        }
        let command = current.get_or_insert_with(|| ShellCommand {
            line: line_no,
            text: String::new(),
            expected: None,
        });
        if !command.text.is_empty() {
            command.text.push('\n');
        }
        command.text.push_str(line);
        let comment = lexer.read(line).map(|at| &line[at..]);
        let expected = comment.and_then(|c| c.strip_prefix(EXPECT_MARK.trim_end()));
        if !lexer.command_ended() {
            assert!(
                expected.is_none(),
                "README.md line {line_no}: `# → ` must end a whole command"
            );
            continue;
        }
        let mut command = current.take().expect("a command is being read");
        command.expected =
            expected.map(|e| e.strip_prefix(' ').unwrap_or(e).trim_end().to_string());
        after_command = true;
        commands.push(command);
    }
    assert!(
        current.is_none(),
        "README.md line {}: the block ends inside a command (an open quote or a trailing \\)",
        block.first_line
    );
    commands
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The session: a prologue (strict mode, curl, the output check), then every command to run,
/// each preceded by its README line number so a failure names it. `out` is where a command's
/// output is captured for comparison.
fn script(runs: &[(Block, Vec<ShellCommand>)], out: &Path) -> String {
    let strict_curl = format!(
        "curl() {{ command curl --fail-with-body --max-time {CURL_MAX_SECONDS} \"$@\"; }}\n"
    );
    let lenient_curl = format!("curl() {{ command curl --max-time {CURL_MAX_SECONDS} \"$@\"; }}\n");
    let mut s = String::from(
        r#"set -euo pipefail
__line=0
__checked=0
trap '__status=$?; [ $__status -eq 0 ] || echo "readme.rs: stopped at README.md line $__line (exit status $__status)" >&2' EXIT
# $1: the README line; $2: the output it shows. One trailing newline or none: a terminal shows both alike.
__expect() {
  local actual
  actual=$(cat "$__out"; printf .)
  actual=${actual%.}
  printf '%s' "$actual"
  if [ "$actual" != "$2" ] && [ "$actual" != "$2"$'\n' ]; then
    printf '\nreadme.rs: README.md line %s printed:\n%s\nreadme.rs: but README shows:\n%s\n' "$1" "$actual" "$2" >&2
    return 1
  fi
  __checked=$((__checked + 1))
}
"#,
    );
    s.push_str(&format!(
        "__out={}\n",
        shell_quote(out.to_str().expect("UTF-8 path"))
    ));
    s.push_str(&strict_curl);
    for (block, commands) in runs {
        s.push_str(&format!("\n# README.md line {}\n", block.first_line));
        if block.how == How::RunShowingErrors {
            s.push_str(&lenient_curl);
        }
        for c in commands {
            s.push_str(&format!("__line={}\n", c.line));
            match &c.expected {
                None => s.push_str(&format!("{}\n", c.text)),
                Some(e) => s.push_str(&format!(
                    "{{ {}\n}} > \"$__out\"\n__expect {} {}\n",
                    c.text,
                    c.line,
                    shell_quote(e)
                )),
            }
        }
        if block.how == How::RunShowingErrors {
            s.push_str(&strict_curl);
        }
    }
    s.push_str("echo \"readme.rs: done, $__checked outputs checked\"\n");
    s
}

/// The runnable blocks of `readme` with their commands, the rewrites applied.
fn runnable(readme_blocks: &[Block], addr: &str, pykv: &str) -> Vec<(Block, Vec<ShellCommand>)> {
    let mut runs = Vec::new();
    for block in readme_blocks {
        assert!(
            !["bash", "shell", "console", "zsh", "shell-session"].contains(&block.lang.as_str()),
            "README.md line {}: write shell examples as ```sh, which tests/readme.rs runs",
            block.first_line - 1
        );
        assert!(
            block.how == How::Run || block.lang == "sh",
            "README.md line {}: a tests/readme.rs marker above a ```{} block",
            block.first_line - 1,
            block.lang
        );
        if block.how == How::Skip {
            assert!(
                !block.lines.iter().any(|l| l.contains(EXPECT_MARK)),
                "README.md line {}: a block not run shows `# → ` output that nothing checks",
                block.first_line
            );
        }
        if block.lang != "sh" || block.how == How::Skip {
            continue;
        }
        let rewritten = Block {
            first_line: block.first_line,
            lang: block.lang.clone(),
            lines: block
                .lines
                .iter()
                .map(|l| {
                    l.replace("127.0.0.1:8080", addr)
                        .replace("./target/release/pykv ", &format!("{} ", shell_quote(pykv)))
                })
                .collect(),
            how: block.how,
        };
        let commands = commands(&rewritten);
        if rewritten.how == How::RunShowingErrors {
            for c in commands.iter().filter(|c| c.text.contains("curl ")) {
                assert!(
                    c.expected.is_some(),
                    "README.md line {}: in a block of errors on purpose, show each curl's output with `# → `",
                    c.line
                );
            }
        }
        runs.push((rewritten, commands));
    }
    runs
}

/// The server as `cargo run --release` starts it in a checkout: no arguments, in `work`, which
/// holds config.json; its log goes to `log`. (`Server::start` passes `--config` and runs in the
/// test's directory, which would not test what the README's two commands do.)
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_shipped_config(work: &Path, log: &Path) -> Served {
    let shipped: serde_json::Value = serde_json::from_str(include_str!("../config.json"))
        .expect("the shipped config.json is JSON");
    assert_eq!(
        shipped["listen"], "127.0.0.1:8080",
        "README's examples use this address"
    );
    assert_eq!(
        shipped["data_dir"], "./data",
        "README's examples read data/admin.token"
    );
    let mut cfg = shipped;
    // Port 0: the kernel picks a free one, which the start line names; no race with others.
    cfg["listen"] = serde_json::json!("127.0.0.1:0");
    std::fs::write(
        work.join("config.json"),
        serde_json::to_vec_pretty(&cfg).unwrap(),
    )
    .unwrap();
    let child = Command::new(bin())
        .current_dir(work)
        .env_remove("PYKV_CONFIG")
        .env_remove("PYKV_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn pykv");
    let mut served = Served {
        child,
        addr: String::new(),
    };
    let started = wait_until(START_LIMIT, || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some((_, rest)) = text.split_once("listening on ") {
            served.addr = rest.split_whitespace().next().unwrap_or("").to_string();
            return true;
        }
        false
    });
    assert!(
        started,
        "pykv did not start:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    served
}

/// The block and the command a failed session stopped at, from its last words on stderr.
fn where_it_stopped(runs: &[(Block, Vec<ShellCommand>)], stderr: &str) -> String {
    let Some(line) = stderr
        .rsplit_once("stopped at README.md line ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return "(the session did not say where it stopped)".to_string();
    };
    for (block, commands) in runs {
        if let Some(c) = commands.iter().find(|c| c.line == line) {
            let numbered: Vec<String> = block
                .lines
                .iter()
                .enumerate()
                .map(|(n, l)| format!("{:5} | {l}", block.first_line + n))
                .collect();
            return format!(
                "the block (README.md line {}):\n{}\n\nthe command (line {line}):\n{}",
                block.first_line,
                numbered.join("\n"),
                c.text
            );
        }
    }
    format!("README.md line {line}")
}

/// Every ```sh block of README.md not marked otherwise runs, top to bottom, on a fresh server
/// started as `cargo run --release` starts it, and prints what README shows.
#[test]
fn every_shell_example_in_the_readme_runs_as_shown() {
    let root = TempDir::new();
    let work = root.path().join("checkout");
    std::fs::create_dir(&work).unwrap();
    let served = serve_shipped_config(&work, &root.path().join("pykv.log"));

    let readme_blocks = blocks(include_str!("../README.md"));
    let runs = runnable(&readme_blocks, &served.addr, bin());
    let expected_outputs: usize = runs
        .iter()
        .map(|(_, cs)| cs.iter().filter(|c| c.expected.is_some()).count())
        .sum();
    // The quick start runs, and most examples with it: marking them "not run" is no way out.
    let quick_start = runs.first().and_then(|(_, cs)| cs.first());
    assert!(
        quick_start.is_some_and(|c| c.text.starts_with("ADMIN=$(cat data/admin.token)")),
        "the first block run must be the quick start, which reads data/admin.token"
    );
    assert!(
        runs.len() >= 10 && expected_outputs >= 25,
        "README runs {} blocks showing {expected_outputs} outputs: were its examples marked as not run?",
        runs.len()
    );
    let script_path = root.path().join("readme.sh");
    std::fs::write(&script_path, script(&runs, &root.path().join("out"))).unwrap();

    // A clean environment: no ~/.curlrc, no PYKV_* variables, only the PATH to find bash and curl.
    let session = run_within(
        Command::new("bash")
            .arg(&script_path)
            .current_dir(&work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root.path()),
        SESSION_LIMIT,
    );
    let log = std::fs::read_to_string(root.path().join("pykv.log")).unwrap_or_default();
    let done = format!("readme.rs: done, {expected_outputs} outputs checked\n");
    assert!(
        session.code == Some(0) && session.stdout.ends_with(&done),
        "README's examples failed{}.\n\n{}\n\n--- what the session printed (last 40 lines):\n{}\n--- its stderr:\n{}\n--- the server's log (last 20 lines):\n{}",
        if session.timed_out { format!(" (killed after {SESSION_LIMIT:?})") } else { String::new() },
        where_it_stopped(&runs, &session.stderr),
        last_lines(&session.stdout, 40),
        session.stderr,
        last_lines(&log, 20),
    );
    drop(served);
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The convention itself, on a small README of its own: a `# → ` comment is the command's
/// output, a line of `# → ` below adds a line, and a quote spanning lines keeps one command.
#[test]
fn an_arrow_comment_is_the_output_and_quotes_span_lines() {
    let readme = "text\n```sh\necho 'a\nb' # not this\nprintf 'x#y\\n'   # → x#y\n# → z\n# a comment\necho $((1 + 1)) # → 2\n```\n";
    let blocks = blocks(readme);
    assert_eq!(blocks.len(), 1);
    let cs = commands(&blocks[0]);
    let shown: Vec<(usize, &str, Option<&str>)> = cs
        .iter()
        .map(|c| (c.line, c.text.as_str(), c.expected.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [
            (3, "echo 'a\nb' # not this", None),
            (5, "printf 'x#y\\n'   # → x#y", Some("x#y\nz")),
            (8, "echo $((1 + 1)) # → 2", Some("2")),
        ]
    );
}

/// Markers: a skipped block is not run, one of errors on purpose is run leniently, and a
/// marker that stands above no block is refused.
#[test]
fn markers_choose_how_a_block_runs() {
    let readme = "<!-- not run by tests/readme.rs: needs root -->\n```sh\nsudo true\n```\n<!-- tests/readme.rs: errors on purpose -->\n```sh\ncurl -s x # → {}\n```\n```sh\ntrue\n```\n";
    let how: Vec<How> = blocks(readme).into_iter().map(|b| b.how).collect();
    assert_eq!(how, [How::Skip, How::RunShowingErrors, How::Run]);
    let stray = std::panic::catch_unwind(|| {
        blocks("<!-- not run by tests/readme.rs: x -->\n\n```sh\ntrue\n```\n")
    });
    assert!(
        stray.is_err(),
        "a marker with a blank line before its block is refused"
    );
}
