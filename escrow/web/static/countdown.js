// Countdowns to a deadline ("data-deadline" = ISO time): updated every second, the page's only script (CSP 'self').
// An element with "data-clear-after" (seconds) is emptied when that time has passed, so an opened identity does not
// stay on an unattended screen. Buttons with "data-print" open the browser's print dialog.
(function () {
  "use strict";
  function left(ms) {
    if (ms <= 0) { return null; }
    var s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + " 時間 " : "") + m + " 分 " + (s % 60) + " 秒";
  }
  var started = Date.now();
  function tick() {
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var text = left(Date.parse(el.getAttribute("data-deadline")) - Date.now());
      el.textContent = text === null ? (el.getAttribute("data-expired") || "期限を過ぎました") : "あと " + text;
    });
    document.querySelectorAll("[data-clear-after]").forEach(function (el) {
      var ms = Number(el.getAttribute("data-clear-after")) * 1000 - (Date.now() - started);
      var label = document.getElementById(el.getAttribute("data-countdown") || "");
      if (label) { label.textContent = ms > 0 ? "あと " + left(ms) : "表示を消しました"; }
      if (ms <= 0 && !el.hasAttribute("data-cleared")) {
        el.setAttribute("data-cleared", "");
        el.textContent = "表示の時間を過ぎたため、本人情報を画面から消しました。同じ申請では再表示できません。";
      }
    });
  }
  tick();
  setInterval(tick, 1000);
  document.querySelectorAll("[data-print]").forEach(function (el) {
    el.addEventListener("click", function () { window.print(); });
  });
})();
