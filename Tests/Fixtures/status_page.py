#!/usr/bin/env python3
"""Drives Arca's status page in a real Chromium (selenium, chromium-driver).

Usage: status_page.py URL VIEWER_TOKEN OPERATOR_TOKEN FOREIGN_TOKEN SCREENSHOT_DIR

Signs in with a malformed token and with one the server refuses (signed with
another secret), then as a viewer (no action buttons) and as an operator:
sees the list, starts a backup, sees it appear. Checks that the token stays
out of the URL and out of localStorage, that the page's responses carry the
Content-Security-Policy, and that the browser logged no CSP violation.
Screenshots go to SCREENSHOT_DIR (not committed). Exits 0 when every check
passes, 1 with the failed check on stderr otherwise.
"""
import sys
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as visible
from selenium.webdriver.support.ui import WebDriverWait


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def main():
    url, viewer, operator, foreign, shots = sys.argv[1:6]
    for path in ("/", "/ui/app.js", "/ui/app.css"):
        with urllib.request.urlopen(url.rstrip("/") + path) as response:
            policy = response.headers.get("Content-Security-Policy", "")
            check("script-src 'self'" in policy and "unsafe-inline" not in policy, f"{path}: CSP is {policy!r}")
            check(response.headers.get("X-Content-Type-Options") == "nosniff", f"{path}: no nosniff")

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 60)

    def sign_in(token):
        field = wait.until(visible.visibility_of_element_located((By.ID, "token")))
        field.clear()
        field.send_keys(token)
        driver.find_element(By.ID, "sign-in-button").click()

    def refused(expected):
        shown = wait.until(visible.visibility_of_element_located((By.ID, "sign-in-error")))
        wait.until(lambda _: expected in shown.text)
        check(driver.find_element(By.ID, "dashboard").is_displayed() is False, "the dashboard shows after a refused sign-in")

    try:
        driver.get(url)
        sign_in("not-a-token")
        refused("not an Arca API token")
        sign_in(foreign)
        refused("The token was refused")
        driver.save_screenshot(f"{shots}/1-refused.png")
        check(driver.execute_script("return sessionStorage.length") == 0, "a refused token was kept")

        sign_in(viewer)
        wait.until(visible.visibility_of_element_located((By.ID, "dashboard")))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#backups tbody tr")) >= 1)
        check(not driver.find_element(By.ID, "backup-now").is_displayed(), "a viewer sees the backup button")
        check(not driver.find_elements(By.CSS_SELECTOR, "#backups tbody button"), "a viewer sees verify or restore buttons")
        check("(viewer)" in driver.find_element(By.ID, "who").text, "the viewer's role is not shown")
        driver.save_screenshot(f"{shots}/2-viewer.png")
        driver.find_element(By.ID, "sign-out").click()
        wait.until(visible.visibility_of_element_located((By.ID, "sign-in")))
        check(driver.execute_script("return sessionStorage.length") == 0, "sign-out kept the token")

        sign_in(operator)
        wait.until(visible.visibility_of_element_located((By.ID, "dashboard")))
        rows = lambda d: len(d.find_elements(By.CSS_SELECTOR, "#backups tbody tr"))
        wait.until(lambda d: rows(d) >= 1)
        before = rows(driver)
        check(driver.find_elements(By.CSS_SELECTOR, "#backups tbody button"), "an operator sees no verify button")
        check(driver.find_element(By.ID, "health").text != "", "no health shown")
        check(driver.find_elements(By.CSS_SELECTOR, "#chart rect"), "the chart has no bars")
        check(operator not in driver.current_url, "the token is in the URL")
        check(driver.execute_script("return localStorage.length") == 0, "the token went to localStorage")
        check(driver.execute_script("return sessionStorage.getItem('arca.token')") == operator, "the token is not in sessionStorage")
        driver.save_screenshot(f"{shots}/3-operator.png")
        driver.find_element(By.ID, "backup-now").click()
        WebDriverWait(driver, 180).until(lambda d: rows(d) == before + 1)
        wait.until(lambda d: "complete" in d.find_element(By.ID, "message").text)
        driver.save_screenshot(f"{shots}/4-after-backup.png")

        violations = [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]
        check(not violations, f"CSP violations: {violations}")
        print("status page: every check passed")
        return 0
    except (AssertionError, TimeoutException) as error:
        driver.save_screenshot(f"{shots}/failed.png")
        print(f"status page check failed: {error!r}", file=sys.stderr)
        print(f"console: {driver.get_log('browser')}", file=sys.stderr)
        return 1
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
