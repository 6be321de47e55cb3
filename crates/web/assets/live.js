// The live feed on the home page: friends' new posts are put at the top as they are published.
// The page works without this script; it only adds what arrives after the page was rendered.
// After a lost connection it reconnects with `since` (the newest post it has), so the server
// replays what was missed; a post already on the page is never shown twice.
(function () {
  "use strict";
  var feed = document.getElementById("feed");
  if (!feed || !feed.dataset.live) return;
  var status = document.getElementById("live-status");
  var since = feed.dataset.since || "";
  var delay = 500;
  var names = {};

  function newer(a, b) {
    // Ids are 64-bit decimal strings: compare by length, then text.
    if (!a) return b;
    if (a.length !== b.length) return a.length > b.length ? a : b;
    return a > b ? a : b;
  }

  function say(text) {
    if (status) status.textContent = text;
  }

  function authorName(id, link) {
    if (names[id]) { link.textContent = names[id]; return; }
    fetch("/user/get/" + encodeURIComponent(id), { headers: { Accept: "application/json" } })
      .then(function (reply) { return reply.ok ? reply.json() : null; })
      .then(function (user) {
        if (!user) return;
        names[id] = user.first_name + " " + user.second_name;
        link.textContent = names[id];
      })
      .catch(function () {});
  }

  function show(message) {
    if (!message || !message.postId) return;
    since = newer(since, message.postId);
    if (document.getElementById("post-" + message.postId)) return;
    var empty = feed.querySelector(".empty");
    if (empty) empty.remove();
    var item = document.createElement("li");
    item.className = "post fresh";
    item.id = "post-" + message.postId;
    item.dataset.postId = message.postId;
    var meta = document.createElement("p");
    meta.className = "meta";
    var author = document.createElement("a");
    author.href = "/people/" + encodeURIComponent(message.author_user_id);
    author.textContent = "user " + message.author_user_id;
    authorName(message.author_user_id, author);
    var open = document.createElement("a");
    open.href = "/posts/" + encodeURIComponent(message.postId);
    open.textContent = "open";
    meta.append(author, " · ", open);
    var text = document.createElement("p");
    text.className = "text";
    text.textContent = message.postText;
    item.append(meta, text);
    feed.prepend(item);
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + location.host + feed.dataset.live + (since ? "?since=" + encodeURIComponent(since) : "");
    var socket = new WebSocket(url);
    socket.onopen = function () {
      delay = 500;
      feed.dataset.connected = "true";
      say("Live: new posts appear at the top as they are published.");
    };
    socket.onmessage = function (event) {
      try { show(JSON.parse(event.data)); } catch (ignored) { /* not a post */ }
    };
    socket.onclose = function () {
      feed.dataset.connected = "false";
      say("Live updates paused: reconnecting…");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  connect();
})();
