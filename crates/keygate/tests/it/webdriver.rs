//! The browser the UI tests drive: Debian's Chromium through chromedriver, with
//! fantoccini as the WebDriver client, behind the few calls the tests make (navigate,
//! find, click, type, read, run a script, answer confirm dialogs, take screenshots),
//! each waiting a bounded time where the page may still be getting there.
//!
//! Browser tests skip with a loud line when Chromium is not installed, and fail
//! instead when `KEYGATE_REQUIRE_BROWSER` is set (as `.ci/run` does).

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium instances are heavy on two cores: one browser test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A live browser session.
pub struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// An element found on the page.
#[derive(Clone, Debug)]
pub struct El(Element);

/// Whether browser tests can run here; prints the skip line or panics as required.
pub fn available(test: &str) -> bool {
    let present =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if present {
        return true;
    }
    if std::env::var_os("KEYGATE_REQUIRE_BROWSER").is_some() {
        panic!(
            "KEYGATE_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
        );
    }
    eprintln!(
        "\n*** SKIPPED browser test {test}: Debian's chromium and chromium-driver are not installed ***\n"
    );
    false
}

/// Where screenshots go: target/ui-screenshots/.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/ui-screenshots"
    ))
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub async fn start(width: u32, height: u32) -> Self {
        let turn = ONE_AT_A_TIME.lock().await;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        // chromedriver is an outside process: retry the session until it listens, bounded.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut client = None;
        for _ in 0..200 {
            match ClientBuilder::new(connector.clone())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
        Self {
            client: client.expect("chromedriver did not answer"),
            driver,
            _profile: profile,
            _turn: turn,
        }
    }

    /// Opens a URL and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting up to 5 s for it to appear.
    pub async fn find(&self, css: &str) -> El {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => El(e),
            Err(e) => panic!("no element {css} on {}: {e}", self.url().await),
        }
    }

    /// Every element matching `css` now.
    pub async fn find_all(&self, css: &str) -> Vec<El> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find all")
            .into_iter()
            .map(El)
            .collect()
    }

    /// Clicks an element.
    pub async fn click(&self, e: &El) {
        e.0.click().await.expect("click");
    }

    /// Types into an element.
    pub async fn type_into(&self, e: &El, text: &str) {
        e.0.send_keys(text).await.expect("type");
    }

    /// Empties an input.
    pub async fn clear(&self, e: &El) {
        e.0.clear().await.expect("clear");
    }

    /// An element's visible text.
    pub async fn text(&self, e: &El) -> String {
        e.0.text().await.expect("text")
    }

    /// A DOM property (`value`, `checked`, `disabled`, ...) as the page has it.
    pub async fn prop(&self, e: &El, name: &str) -> Value {
        let element = serde_json::to_value(&e.0).expect("element as JSON");
        self.client
            .execute(
                "return arguments[0][arguments[1]];",
                vec![element, json!(name)],
            )
            .await
            .expect("property")
    }

    /// Runs a script in the page and returns its result.
    pub async fn script(&self, js: &str) -> Value {
        self.client.execute(js, Vec::new()).await.expect("script")
    }

    /// The page's HTML source.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("source")
    }

    /// The text of an open alert or confirm dialog, waiting for it briefly.
    pub async fn dialog_text(&self) -> String {
        for _ in 0..100 {
            if let Ok(t) = self.client.get_alert_text().await {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no dialog opened");
    }

    /// Answers an open dialog: Ok (`true`) or Cancel.
    pub async fn answer_dialog(&self, ok: bool) {
        let r = if ok {
            self.client.accept_alert().await
        } else {
            self.client.dismiss_alert().await
        };
        r.expect("answer the dialog");
    }

    /// Saves a PNG screenshot as target/ui-screenshots/<name>.png.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Waits until `check` holds (polling the page), at most 5 s.
    pub async fn until(&self, what: &str, js: &str) {
        for _ in 0..100 {
            if self.script(js).await == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what} on {}", self.url().await);
    }

    /// Ends the session and stops chromedriver.
    pub async fn quit(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill().await;
    }
}
