// The review queue's keyboard: a accept, r reject, n next, p previous; Esc leaves the note.
// Keys typed into the note (or any field) are text, not shortcuts.
document.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input, textarea, select");
  if (event.key === "Escape" && typing) {
    event.target.blur();
    return;
  }
  if (typing || event.ctrlKey || event.metaKey || event.altKey) {
    return;
  }
  const targets = { a: "verdict-accept", r: "verdict-reject", n: "next", p: "prev" };
  const element = document.getElementById(targets[event.key] || "");
  if (element) {
    event.preventDefault();
    element.click();
  }
});
