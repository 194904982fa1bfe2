// The search page: every text from the API is put in the page with textContent (never HTML).
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

async function getJson(url, options) {
  let answer;
  try {
    answer = await fetch(url, options);
  } catch (err) {
    throw new Error("the service cannot be reached (" + err.message + ")");
  }
  let body = null;
  try {
    body = await answer.json();
  } catch (err) {
    body = null;
  }
  if (!answer.ok) {
    const message = body && body.error ? body.error : "HTTP " + answer.status;
    throw new Error(message);
  }
  return body;
}

function showError(id, message) {
  const box = $(id);
  box.textContent = message || "";
  box.hidden = !message;
}

function thumbnail(result, className) {
  if (result.thumbnail) {
    const img = el("img", className);
    img.src = result.thumbnail;
    img.alt = result.caption || result.image || "";
    img.title = result.image || "";
    return img;
  }
  return el("div", className + " no-photo", result.image || result.id);
}

function resultCard(result, rank) {
  const card = el("figure", "card");
  card.dataset.id = result.id;
  card.appendChild(thumbnail(result, "thumb"));
  const caption = el("figcaption");
  caption.appendChild(el("span", "score", "#" + rank + "  S " + result.score.toFixed(3)));
  caption.appendChild(el("span", "caption", result.caption));
  caption.appendChild(el("span", "id", result.id));
  if (result.image) {
    const compare = el("button", "link", "compare");
    compare.type = "button";
    compare.addEventListener("click", () => openCompare(result.image));
    caption.appendChild(compare);
  }
  card.appendChild(caption);
  return card;
}

function showResults(answer, what) {
  const grid = $("results");
  grid.replaceChildren(...answer.results.map((r, i) => resultCard(r, i + 1)));
  $("status").textContent = answer.results.length + " results for " + what + " (" +
    answer.mode + ", " + answer.model_name + " version " + answer.model_version + ")";
}

async function runSearch(request, what) {
  showError("error", "");
  $("results").replaceChildren();
  $("status").textContent = "searching…";
  try {
    showResults(await request(), what);
  } catch (err) {
    $("results").replaceChildren();
    $("status").textContent = "";
    showError("error", err.message);
  }
}

function searchText(event) {
  event.preventDefault();
  const query = $("query").value;
  const params = new URLSearchParams({q: query, mode: $("text-mode").value, k: "10"});
  runSearch(() => getJson("/api/search?" + params), "“" + query + "”");
}

function searchPhoto(file) {
  if (!file) return;
  const preview = $("photo-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  const form = new FormData();
  form.append("photo", file, file.name);
  const params = new URLSearchParams({mode: $("photo-mode").value, k: "10"});
  runSearch(() => getJson("/api/search/image?" + params, {method: "POST", body: form}),
    "photo " + file.name);
}

function setupDrop() {
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    searchPhoto(event.dataTransfer.files[0]);
  });
  $("photo").addEventListener("change", (event) => searchPhoto(event.target.files[0]));
}

function compareResult(result, queryImage) {
  // The query photo's own place among a caption's results: the ground truth of that caption.
  const cell = el("figure", result.image === queryImage ? "mini own" : "mini");
  cell.appendChild(thumbnail(result, "thumb-small"));
  const relevance = result.relevance === null ? "–" : result.relevance.toFixed(2);
  cell.appendChild(el("figcaption", "sr", "S " + result.score.toFixed(2) + "  R " + relevance));
  cell.title = result.caption;
  return cell;
}

function compareQuery(query) {
  const head = el("div", "panel-query");
  if (query.kind === "image") {
    head.appendChild(thumbnail({thumbnail: query.thumbnail, image: query.id, caption: ""},
      "thumb-small"));
    head.appendChild(el("span", "caption", "image query " + query.id));
  } else {
    head.appendChild(el("span", "caption", "“" + query.text + "”"));
  }
  return head;
}

function showCompare(answer) {
  const header = el("div", "panel panel-header");
  header.appendChild(el("div", "panel-query", "query"));
  for (const model of answer.models) {
    header.appendChild(el("div", "column-title", model.model_name + " v" + model.model_version));
  }
  const queryImage = answer.query.kind === "image" ? answer.query.id : null;
  const panels = answer.panels.map((panel) => {
    const row = el("div", "panel");
    row.appendChild(compareQuery(panel.query));
    for (const column of panel.columns) {
      const strip = el("div", "strip");
      strip.replaceChildren(...column.results.map((r) => compareResult(r, queryImage)));
      row.appendChild(strip);
    }
    return row;
  });
  $("compare-results").replaceChildren(header, ...panels);
}

async function runCompare(params) {
  showError("compare-error", "");
  try {
    showCompare(await getJson("/api/compare?" + new URLSearchParams(params)));
  } catch (err) {
    $("compare-results").replaceChildren();
    showError("compare-error", err.message);
  }
}

function looksLikeImageId(text) {
  return /^\S+\.(jpe?g|png)$/i.test(text);
}

function openCompare(imageId) {
  showTab("compare");
  $("compare-query").value = imageId;
  runCompare({id: imageId});
}

function showTab(name) {
  $("search-view").hidden = name !== "search";
  $("compare-view").hidden = name !== "compare";
  $("tab-search").classList.toggle("active", name === "search");
  $("tab-compare").classList.toggle("active", name === "compare");
}

async function refreshInfo() {
  try {
    const health = await getJson("/api/healthz");
    let text = health.model_name + " version " + health.model_version + " · " + health.source +
      " · " + health.images + " images";
    if (health.compare) {
      text += " · compared with " + health.compare.model_name + " version " +
        health.compare.model_version;
    }
    $("model-info").textContent = text;
  } catch (err) {
    $("model-info").textContent = "service unavailable: " + err.message;
  }
}

function setup() {
  $("text-form").addEventListener("submit", searchText);
  setupDrop();
  $("tab-search").addEventListener("click", () => showTab("search"));
  $("tab-compare").addEventListener("click", () => showTab("compare"));
  $("compare-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("compare-query").value.trim();
    runCompare(looksLikeImageId(text) ? {id: text} : {q: text});
  });
  $("compare-random").addEventListener("click", async () => {
    try {
      openCompare((await getJson("/api/random-image")).id);
    } catch (err) {
      showError("compare-error", err.message);
    }
  });
  refreshInfo();
  setInterval(refreshInfo, 15000);
}

document.addEventListener("DOMContentLoaded", setup);
