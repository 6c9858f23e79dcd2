// Keyboard-first judging: 1/2 pick a side (3 a tie where allowed), A S D F the strength, Q/W and
// O/P the safety labels, Enter submits, K jumps to the skip reason, U undoes, R shows the raw
// text, ? opens the guidelines.
(function () {
  const STRENGTH_KEYS = { a: 0, s: 1, d: 2, f: 3 };
  const SAFETY_KEYS = {
    q: ["left_safe", "safe"], w: ["left_safe", "unsafe"],
    o: ["right_safe", "safe"], p: ["right_safe", "unsafe"],
  };

  function check(form, name, value) {
    const input = form.querySelector(`input[name="${name}"][value="${value}"]`);
    if (input) { input.checked = true; }
  }

  function typing(target) {
    return target.closest("textarea, input:not([type=radio]):not([type=checkbox]), select");
  }

  // Enter on a focused link or button (Tab to "Undo", Enter) is that control's own action.
  function onOtherControl(target) {
    return target.closest("a[href], button, summary, select, [contenteditable]");
  }

  // Raw text or rendered Markdown, one choice for every page, kept across swaps and reloads.
  const RAW_KEY = "margin.showRaw";
  function rawShow(on) {
    document.documentElement.classList.toggle("show-raw", on);
    try { localStorage.setItem(RAW_KEY, on ? "1" : ""); } catch (e) { /* private mode */ }
    document.querySelectorAll("#raw-toggle").forEach((button) => {
      button.setAttribute("aria-pressed", String(on));
      button.firstChild.textContent = on ? "Show formatted text " : "Show raw text ";
    });
  }
  function rawShown() { return document.documentElement.classList.contains("show-raw"); }
  try { if (localStorage.getItem(RAW_KEY)) { document.documentElement.classList.add("show-raw"); } } catch (e) { /* private mode */ }
  document.addEventListener("DOMContentLoaded", () => rawShow(rawShown()));
  document.addEventListener("click", (event) => {
    if (event.target.closest("#raw-toggle")) { rawShow(!rawShown()); }
  });

  // After the next comparison swaps in, start reading it from the top of its dialogue.
  document.addEventListener("htmx:afterSettle", (event) => {
    const task = document.getElementById("task");
    rawShow(rawShown());
    if (!task || event.detail.target.id !== "task") { return; }
    if (task.getBoundingClientRect().top < 0) { task.scrollIntoView({ block: "start" }); }
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey && event.key === "Enter" && typing(event.target)) {
      event.target.form && event.target.form.requestSubmit();
      event.preventDefault();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    const form = document.getElementById("judgment-form");
    const key = event.key.toLowerCase();
    if (key === "?") {
      const guide = document.getElementById("guidelines");
      if (guide) { guide.open = !guide.open; }
      return;
    }
    if (key === "u") { document.getElementById("undo-button")?.click(); return; }
    if (key === "r" && document.getElementById("raw-toggle")) { rawShow(!rawShown()); return; }
    if (!form) { return; }
    if (key === "enter" && onOtherControl(event.target)) { return; }
    if (key === "1") { check(form, "choice", "left"); }
    else if (key === "2") { check(form, "choice", "right"); }
    else if (key === "3") { check(form, "choice", "tie"); }
    else if (key in STRENGTH_KEYS) {
      const inputs = form.querySelectorAll('input[name="strength"]');
      inputs[STRENGTH_KEYS[key]].checked = true;
    } else if (key in SAFETY_KEYS) { check(form, ...SAFETY_KEYS[key]); }
    else if (key === "enter") { form.requestSubmit(); }
    else if (key === "k") { document.querySelector('#skip-form input[name="reason"]')?.focus(); }
    else { return; }
    event.preventDefault();
  });

  // A failed request leaves the form untouched (htmx swaps nothing on errors): say why instead of
  // nothing. 401: the session ended (margin.middleware); 403: the CSRF token went stale with it.
  const banners = ["net-error", "session-expired"].map((id) => document.getElementById(id));
  function showBanner(id) {
    banners.forEach((banner) => { if (banner) { banner.hidden = banner.id !== id; } });
  }
  document.addEventListener("htmx:sendError", () => showBanner("net-error"));
  document.addEventListener("htmx:responseError", (e) => {
    const status = e.detail.xhr.status;
    showBanner(status === 401 || status === 403 ? "session-expired" : "net-error");
  });
  document.addEventListener("htmx:afterRequest", (e) => {
    if (e.detail.successful || e.detail.xhr.status === 422) { showBanner(null); }
  });

  // After logging in again (another tab) the token rendered in this page is stale; the cookie
  // holds the current one, so every htmx request sends that.
  document.addEventListener("htmx:configRequest", (e) => {
    const token = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (!token) { return; }
    e.detail.headers["X-CSRFToken"] = token[1];
    if (e.detail.formData && e.detail.formData.has("csrfmiddlewaretoken")) {
      e.detail.formData.set("csrfmiddlewaretoken", token[1]);
    }
  });
})();
