// The live page of `framepack watch --serve`. The server sends a snapshot of every file and
// shot when the page connects, then each change as an event carrying the whole file or shot,
// so drawing is always "make this element show that state". Elements are updated in place:
// an image or video whose URL did not change is left alone, so nothing flickers or reloads.
"use strict";

const files = new Map();  // path -> file state
const shots = new Map();  // id -> shot state
const LOG_LINES = 200;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function part(root, selector, make) {
  return root.querySelector(selector) || root.appendChild(make());
}

// ---------------------------------------------------------------- files

function fileCard(file) {
  const id = "file-" + CSS.escape(file.path);
  let card = document.getElementById(id);
  if (!card) {
    card = el("section", "file");
    card.id = id;
    card.append(el("h2", "file-name"), el("ul", "errors"), el("div", "shots"));
    document.getElementById("files").append(card);
  }
  return card;
}

function drawFile(file) {
  document.getElementById("empty").hidden = true;
  const card = fileCard(file);
  card.dataset.path = file.path;
  setText(card.querySelector(".file-name"), file.name);
  const errors = card.querySelector(".errors");
  errors.replaceChildren(...file.errors.map((line) => el("li", "error-line", line)));
  card.classList.toggle("invalid", file.errors.length > 0);
  const holder = card.querySelector(".shots");
  for (const id of file.shots) {
    const shot = shots.get(id);
    if (shot) holder.append(shotCard(shot));  // moves existing cards into the file's order
  }
  for (const stale of [...holder.children]) {
    if (!file.shots.includes(stale.dataset.shotId)) stale.remove();
  }
}

// ---------------------------------------------------------------- shots

function shotCard(shot) {
  let card = document.querySelector(`.shot[data-shot-id="${shot.id}"]`);
  if (!card) {
    card = el("article", "shot");
    card.dataset.shotId = shot.id;
    const head = el("div", "shot-head");
    head.append(el("h3", "label"), el("span", "status"), el("span", "detail muted"),
                el("span", "renders muted"));
    const body = el("div", "shot-body");
    body.append(el("figure", "media"), el("div", "windows"));
    card.append(head, el("p", "shot-error"), el("div", "edits"), body,
                el("p", "summary muted"), el("ul", "outputs muted"));
  }
  return card;
}

function drawShot(shot) {
  const card = shotCard(shot);
  if (!card.isConnected) {  // its file card places it; until then keep it under its file
    fileCard({path: shot.file}).querySelector(".shots").append(card);
  }
  card.dataset.status = shot.status;
  card.dataset.renders = String(shot.renders);
  const label = card.querySelector(".label");
  setText(label, shot.name);
  label.hidden = !shot.name;  // a file's only shot: the file's name says it already
  const status = card.querySelector(".status");
  setText(status, shot.status);
  status.dataset.status = shot.status;
  setText(card.querySelector(".detail"), shot.detail);
  setText(card.querySelector(".renders"),
          shot.renders ? `render ${shot.renders} · ${clock(shot.finished)}` : "");
  const error = card.querySelector(".shot-error");
  setText(error, shot.error ? "error: " + shot.error : "");
  error.hidden = !shot.error;
  setText(card.querySelector(".summary"), shot.summary);
  const outputs = card.querySelector(".outputs");  // the summary names them once rendered
  outputs.replaceChildren(...shot.outputs.map((path) => el("li", "", path)));
  outputs.hidden = Boolean(shot.summary);
  drawEdits(card.querySelector(".edits"), shot.edits);
  drawWindows(card.querySelector(".windows"), shot);
  drawMedia(card.querySelector(".media"), shot);
}

function progress(item) {
  if (item.state === "sampling") return `step ${item.step} of ${item.steps}`;
  if (item.state === "done" && item.seconds !== null && item.seconds !== undefined) {
    return `done in ${item.seconds.toFixed(1)} s`;
  }
  return item.state;
}

function drawWindows(holder, shot) {
  while (holder.children.length > shot.windows.length) holder.lastChild.remove();
  shot.windows.forEach((window, i) => {
    const tile = holder.children[i] || holder.appendChild(windowTile(shot));
    tile.dataset.state = window.state;
    tile.dataset.key = window.key;
    setText(tile.querySelector(".name"), `window ${window.index + 1}`);
    setText(tile.querySelector(".span"), window.span);
    setText(tile.querySelector(".state"), progress(window));
    tile.title = `generated ${ordinal(window.order + 1)} · key ${window.key.slice(0, 12)}`;
    const bar = tile.querySelector(".bar > span");
    const share = window.steps ? window.step / window.steps : 0;
    bar.style.width = (window.state === "sampling" ? 100 * share : 0) + "%";
    // An <img> only once there is a picture: an empty one would count as a broken image.
    const img = tile.querySelector("img");
    if (window.thumb && !img) {
      const picture = el("img");
      picture.alt = `window ${window.index + 1}, last frame`;
      picture.src = window.thumb;
      tile.querySelector(".picture").prepend(picture);
    } else if (window.thumb && img.getAttribute("src") !== window.thumb) {
      img.src = window.thumb;
    } else if (!window.thumb && img) {
      img.remove();
    }
  });
}

function windowTile(shot) {
  const tile = el("div", "window");
  const picture = el("div", "picture");
  if (shot.width && shot.height) picture.style.aspectRatio = `${shot.width} / ${shot.height}`;
  const bar = el("div", "bar");
  bar.append(el("span"));
  picture.append(bar);
  const caption = el("div", "caption");
  caption.append(el("span", "name"), el("span", "span muted"), el("span", "state"));
  tile.append(picture, caption);
  return tile;
}

function drawEdits(holder, edits) {
  holder.replaceChildren(...edits.map((edit) => {
    const chip = el("span", "edit", `edit ${edit.name}: ${progress(edit)}`);
    chip.dataset.state = edit.state;
    return chip;
  }));
}

function drawMedia(figure, shot) {
  const video = shot.video;
  const current = figure.querySelector("video, img");
  if (!video) {
    if (current) current.remove();
    setText(part(figure, "figcaption", () => el("figcaption", "muted")), "no video yet");
    return;
  }
  const tag = video.type === "image" ? "IMG" : "VIDEO";
  let media = current && current.tagName === tag ? current : null;
  if (!media) {
    if (current) current.remove();
    media = document.createElement(tag.toLowerCase());
    if (tag === "VIDEO") {
      Object.assign(media, {muted: true, loop: true, autoplay: true, playsInline: true,
                            controls: true});
    }
    figure.prepend(media);
  }
  if (media.getAttribute("src") !== video.url) media.src = video.url;
  setText(part(figure, "figcaption", () => el("figcaption", "muted")),
          video.kind === "preview" ? "preview (finished windows so far)" : "output");
  figure.dataset.kind = video.kind;
}

// ---------------------------------------------------------------- log

function addLog(line) {
  const list = document.getElementById("log");
  const item = el("li", "log-" + line.level);
  item.append(el("time", "muted", line.time), el("span", "", line.text));
  list.append(item);
  while (list.children.length > LOG_LINES) list.firstChild.remove();
  item.scrollIntoView({block: "nearest"});
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], {hour12: false});
}

function ordinal(n) {
  const tail = n % 100 >= 11 && n % 100 <= 13 ? "th" : ({1: "st", 2: "nd", 3: "rd"}[n % 10] || "th");
  return n + tail;
}

// ---------------------------------------------------------------- events

function snapshot(state) {
  files.clear();
  shots.clear();
  document.querySelectorAll(".file").forEach((card) => card.remove());
  document.getElementById("log").replaceChildren();
  setText(document.getElementById("folders"), state.folders.length
    ? "watching " + state.folders.join(", ") : "");
  state.shots.forEach((shot) => shots.set(shot.id, shot));
  state.files.forEach((file) => { files.set(file.path, file); drawFile(file); });
  state.shots.forEach(drawShot);
  state.log.forEach(addLog);
}

function connect() {
  const status = document.getElementById("connection");
  const source = new EventSource("/events");
  const handle = (name, draw) => source.addEventListener(name, (event) => {
    draw(JSON.parse(event.data));
  });
  handle("snapshot", snapshot);
  handle("file", (file) => { files.set(file.path, file); drawFile(file); });
  handle("shot", (shot) => { shots.set(shot.id, shot); drawShot(shot); });
  handle("log", addLog);
  source.onopen = () => { status.dataset.state = "live"; status.textContent = "live"; };
  source.onerror = () => {
    status.dataset.state = "lost";
    status.textContent = "connection lost, retrying…";
  };
}

connect();
