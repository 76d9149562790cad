/* Rendering the way Telegram draws messages: entities, media, replies, inline keyboards. */

import { MEDIA_ICONS, MEDIA_NAMES, TIME, colorFor, fileSize, fileUrl, fullName, h, safeHref, snippetOf } from "./util.js";

/* -- Telegram text: text + entities (offsets in UTF-16 code units, as JS strings) --------- */

export function renderText(text, entities, phone) {
  const sorted = (entities || [])
    .filter((entity) => entity.length > 0)
    .slice()
    .sort((a, b) => a.offset - b.offset || b.length - a.length);
  return build(0, text.length, sorted);

  function build(start, end, list) {
    const fragment = document.createDocumentFragment();
    let position = start;
    let index = 0;
    while (index < list.length) {
      const entity = list[index];
      const entityStart = Math.max(entity.offset, position);
      const entityEnd = Math.min(entity.offset + entity.length, end);
      let next = index + 1;
      const inner = [];
      while (next < list.length && list[next].offset < entity.offset + entity.length) {
        inner.push(list[next]);
        next += 1;
      }
      if (entityStart > position) fragment.append(text.slice(position, entityStart));
      if (entityEnd > entityStart) {
        const element = elementFor(entity, text.slice(entityStart, entityEnd), phone);
        element.append(build(entityStart, entityEnd, inner));
        fragment.append(element);
        position = entityEnd;
      }
      index = next;
    }
    if (position < end) fragment.append(text.slice(position, end));
    return fragment;
  }
}

function elementFor(entity, content, phone) {
  switch (entity.type) {
    case "bold":
      return h("b");
    case "italic":
      return h("i");
    case "underline":
      return h("u");
    case "strikethrough":
      return h("s");
    case "spoiler":
      return h("span", {
        class: "spoiler",
        onclick: (event) => {
          event.stopPropagation();
          event.currentTarget.classList.add("shown");
        },
      });
    case "code":
      return h("code", {
        title: "Bấm để sao chép",
        onclick: (event) => {
          event.stopPropagation();
          phone.copy(content);
        },
      });
    case "pre":
      return h("pre");
    case "blockquote":
    case "expandable_blockquote":
      return h("blockquote");
    case "text_link": {
      const href = safeHref(entity.url);
      return href ? h("a", { href, target: "_blank", rel: "noopener" }) : h("span");
    }
    case "url": {
      const href = safeHref(/^[a-z]+:/i.test(content) ? content : `http://${content}`);
      return href ? h("a", { href, target: "_blank", rel: "noopener" }) : h("span");
    }
    case "email":
      return h("a", { href: `mailto:${content}` });
    case "phone_number":
      return h("a", { href: `tel:${content.replace(/[^0-9+]/g, "")}` });
    case "bot_command":
      return h("span", {
        class: "command",
        title: "Gửi lệnh này",
        onclick: (event) => {
          event.stopPropagation();
          phone.sendText(content.split("@")[0]);
        },
      });
    case "mention":
    case "text_mention":
    case "hashtag":
    case "cashtag":
      return h("span", { class: "mention" });
    default:
      return h("span");
  }
}

/* -- messages ---------------------------------------------------------------------------- */

export function renderMessage(phone, view) {
  const message = view.message || {};
  const service = serviceText(phone, message);
  if (service) return h("div", { class: "service", dataset: { id: view.message_id } }, service);
  const mine = phone.isMine(view);
  const bubble = h("div", { class: "bubble" });
  if (phone.isGroup && !mine) {
    const name = view.from_bot ? phone.app.config.bot.name : fullName(view.from);
    bubble.append(h("div", { class: "sender", style: `color: ${colorFor(view.from && view.from.id)}` }, name));
  }
  if (message.reply_to_message) bubble.append(renderQuote(phone, message.reply_to_message));
  const media = renderMedia(view.media);
  if (media) bubble.append(media);
  const text = view.text || view.caption || "";
  if (text) bubble.append(h("div", { class: "text" }, renderText(text, view.entities, phone)));
  else if (media && ["photo", "location", "venue"].includes(view.media.kind)) bubble.classList.add("media-only");
  const meta = h(
    "span",
    { class: "meta" },
    view.edited ? "đã sửa " : "",
    TIME.format(new Date((view.date || 0) * 1000)),
    mine ? " ✓✓" : "",
  );
  bubble.append(meta);
  bubble.addEventListener("click", (event) => {
    if (event.target.closest("a, button, code, .command, .spoiler")) return;
    phone.openContextMenu(view.message_id, bubble);
  });
  const element = h(
    "div",
    {
      class: `msg ${mine ? "out" : "in"}`,
      dataset: { id: view.message_id, seq: view.seq, from: view.from_bot ? "bot" : "user" },
    },
    bubble,
  );
  const keyboard = renderInlineKeyboard(phone, view);
  if (keyboard) element.append(keyboard);
  return element;
}

function serviceText(phone, message) {
  const actor = fullName(message.from);
  if (message.new_chat_members) {
    const names = message.new_chat_members.map((user) => (user.is_bot ? phone.app.config.bot.name : fullName(user)));
    return `${actor} đã thêm ${names.join(", ")} vào nhóm`;
  }
  if (message.left_chat_member) {
    const user = message.left_chat_member;
    return `${actor} đã xóa ${user.is_bot ? phone.app.config.bot.name : fullName(user)} khỏi nhóm`;
  }
  if (message.group_chat_created || message.supergroup_chat_created) return `${actor} đã tạo nhóm`;
  if (message.new_chat_title) return `${actor} đã đổi tên nhóm thành “${message.new_chat_title}”`;
  if (message.pinned_message) return `${actor} đã ghim một tin nhắn`;
  return null;
}

function renderQuote(phone, replied) {
  const name = replied.from && replied.from.is_bot ? phone.app.config.bot.name : fullName(replied.from);
  return h(
    "div",
    {
      class: "quote",
      onclick: (event) => {
        event.stopPropagation();
        phone.flash(replied.message_id);
      },
    },
    h("span", { class: "name" }, name),
    h("span", { class: "snippet" }, snippetOf(replied)),
  );
}

function renderMedia(media) {
  if (!media) return null;
  const kind = media.kind;
  if (kind === "photo") {
    const style = media.width && media.height ? `aspect-ratio: ${media.width} / ${media.height}` : null;
    return h(
      "a",
      { class: "photo-wrap", href: fileUrl(media.file_id), target: "_blank", rel: "noopener" },
      h("img", { class: "photo", src: fileUrl(media.file_id), alt: "Ảnh", loading: "lazy", style }),
    );
  }
  if (kind === "location" || kind === "venue") {
    const location = kind === "venue" ? media.location || {} : media;
    const lat = Number(location.latitude);
    const lon = Number(location.longitude);
    const href = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`;
    return h(
      "a",
      { class: "map", href, target: "_blank", rel: "noopener", title: "Mở bản đồ" },
      h("span", { class: "pin" }, "📍"),
      h("span", { class: "coords" }, `${lat.toFixed(5)}, ${lon.toFixed(5)}`),
    );
  }
  if (kind === "sticker") return h("div", { class: "text", style: "font-size: 56px" }, media.emoji || "🖼️");
  if (kind === "dice") return h("div", { class: "text" }, `${media.emoji || "🎲"} ${media.value || ""}`);
  if (kind === "contact") {
    return h("div", { class: "text" }, `👤 ${[media.first_name, media.last_name].filter(Boolean).join(" ")} ${media.phone_number || ""}`);
  }
  if (kind === "poll") return h("div", { class: "text" }, `📊 ${media.question || ""}`);
  if (media.file_id) {
    const name = media.file_name || MEDIA_NAMES[kind] || "Tệp";
    const details = [fileSize(media.file_size), media.duration ? `${media.duration} giây` : ""].filter(Boolean).join(" · ");
    return h(
      "a",
      { class: "doc", href: fileUrl(media.file_id), target: "_blank", rel: "noopener", download: media.file_name || null },
      h("span", { class: "icon" }, MEDIA_ICONS[kind] || "📄"),
      h("span", {}, h("span", { class: "name" }, name), h("br"), h("span", { class: "size" }, details)),
    );
  }
  return h("div", { class: "text" }, `[${MEDIA_NAMES[kind] || kind}]`);
}

function renderInlineKeyboard(phone, view) {
  const rows = (view.reply_markup && view.reply_markup.inline_keyboard) || [];
  if (rows.length === 0) return null;
  return h(
    "div",
    { class: "ikb" },
    rows.map((row) =>
      h(
        "div",
        { class: "row" },
        row.map((button) => {
          const element = h(
            "button",
            { type: "button", title: button.text },
            button.text,
            button.url ? h("span", { class: "url-mark" }, "↗") : null,
          );
          element.addEventListener("click", () => phone.pressInline(view, button, element));
          return element;
        }),
      ),
    ),
  );
}
