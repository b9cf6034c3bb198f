// Keyboard shortcuts of the review screen (served from 'self'; the page works without it):
// S = same person, D = different persons (each selects the decision and moves to the reason), N / P = next / previous
// pair (skip), Ctrl+Enter in a reason = record. A refused decision's message is focused, so it is never off-screen.
(function () {
  "use strict";
  var cards = Array.prototype.slice.call(document.querySelectorAll("section.pair"));
  function current() {
    var active = document.activeElement;
    for (var i = 0; i < cards.length; i++) { if (cards[i].contains(active)) { return i; } }
    var top = 0;
    for (var j = 0; j < cards.length; j++) { if (cards[j].getBoundingClientRect().top <= 80) { top = j; } }
    return top;
  }
  function go(i) {
    if (i < 0 || i >= cards.length) { return; }
    cards[i].focus();
    cards[i].scrollIntoView({ block: "start" });
  }
  document.addEventListener("keydown", function (event) {
    var target = event.target, typing = target.tagName === "TEXTAREA" || target.tagName === "INPUT" && target.type === "text";
    if (typing) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.form) { target.form.requestSubmit(); event.preventDefault(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var key = event.key.toLowerCase(), card = cards[current()];
    if (!card) { return; }
    if (key === "s" || key === "d") {
      var radio = card.querySelector('input[data-key="' + key + '"]');
      if (radio) { radio.checked = true; card.querySelector("textarea").focus(); event.preventDefault(); }
    } else if (key === "n") { go(current() + 1); event.preventDefault(); }
    else if (key === "p") { go(current() - 1); event.preventDefault(); }
  });
  var alert = document.querySelector("[data-focus]");
  if (alert) { alert.scrollIntoView({ block: "center" }); alert.focus(); }
})();
