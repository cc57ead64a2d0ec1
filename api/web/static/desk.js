// The review desk's only script (served by causa: the Content-Security-Policy allows no other
// and no inline script). Keys on the review page; a queued admin task followed on /models.
"use strict";

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const target = event.target;
  if (target instanceof HTMLElement && target.closest("input, textarea, select, [contenteditable]")) return;
  if (document.body.dataset.page !== "review") return;
  if (["1", "2", "3"].includes(event.key)) {
    const button = document.querySelector(`button.suggestion[data-key="${event.key}"]`);
    if (button) {
      event.preventDefault();
      button.click();
    }
  } else if (event.key === "s") {
    const skip = document.getElementById("skip");
    if (skip) {
      event.preventDefault();
      window.location.assign(skip.href);
    }
  } else if (event.key === "/") {
    const search = document.getElementById("cause-search");
    if (search) {
      event.preventDefault();
      search.focus();
    }
  }
});

function follow(box) {
  const id = box.dataset.task;
  const shown = box.querySelector(".state");
  const tick = async () => {
    try {
      const answer = await fetch(`/models/task/${encodeURIComponent(id)}`, { credentials: "same-origin" });
      const task = await answer.json();
      box.dataset.state = task.state;
      shown.textContent = task.state + (task.error ? `: ${task.error}` : "");
      if (task.state === "succeeded" || task.state === "failed") return;
    } catch (error) {
      shown.textContent = "not known yet (retrying)";
    }
    window.setTimeout(tick, 1000);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("task");
  if (box) follow(box);
});
