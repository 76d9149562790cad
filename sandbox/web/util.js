/* Shared helpers of the demo page: DOM building, the control API, names and files. */

export const TIME = new Intl.DateTimeFormat("vi-VN", {
  hour: "2-digit",
  minute: "2-digit",
  timeZone: "Asia/Ho_Chi_Minh",
});
const NUMBER = new Intl.NumberFormat("vi-VN", { maximumFractionDigits: 1 });
const PALETTE = ["#e17076", "#7bc862", "#65aadd", "#a695e7", "#ee7aae", "#6ec9cb", "#faa774"];
export const ANSWER_TIMEOUT = 10;
export const TOAST_MS = 2600;

export const MEDIA_ICONS = {
  document: "📄",
  video: "🎬",
  animation: "🎞️",
  audio: "🎵",
  voice: "🎤",
  video_note: "📹",
};
export const MEDIA_NAMES = {
  document: "Tệp",
  video: "Video",
  animation: "Ảnh động",
  audio: "Âm thanh",
  voice: "Tin nhắn thoại",
  video_note: "Video tròn",
  photo: "Ảnh",
  sticker: "Nhãn dán",
  location: "Vị trí",
  venue: "Địa điểm",
  contact: "Liên hệ",
  poll: "Bình chọn",
  dice: "Xúc xắc",
};

/* -- small helpers -------------------------------------------------------------------- */

export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  if (!response.ok || !data || data.ok === false) {
    const message = (data && (data.error || data.description)) || response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return data;
}

export function fullName(user) {
  if (!user) return "";
  return [user.first_name, user.last_name].filter(Boolean).join(" ");
}

export function initials(name) {
  const words = String(name || "?").split(/\s+/).filter(Boolean);
  const first = words[0] ? words[0][0] : "?";
  const last = words.length > 1 ? words[words.length - 1][0] : "";
  return (first + last).toUpperCase();
}

export function colorFor(id) {
  return PALETTE[Math.abs(Number(id) || 0) % PALETTE.length];
}

export function avatar(name, id) {
  const color = colorFor(id);
  return h(
    "div",
    { class: "avatar", style: `background: linear-gradient(160deg, ${color}, ${color}cc)` },
    initials(name),
  );
}

export function fileSize(bytes) {
  if (!bytes) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${NUMBER.format(bytes / 1024)} KB`;
  return `${NUMBER.format(bytes / 1024 / 1024)} MB`;
}

export function fileUrl(fileId) {
  return `/control/files/${encodeURIComponent(fileId)}`;
}

export function readAsBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export function safeHref(url) {
  try {
    const parsed = new URL(url, window.location.href);
    return ["http:", "https:", "tg:", "mailto:", "tel:"].includes(parsed.protocol) ? parsed.href : null;
  } catch (error) {
    return null;
  }
}

export function snippetOf(message) {
  if (!message) return "";
  const text = message.text || message.caption || "";
  for (const kind of Object.keys(MEDIA_NAMES)) {
    if (message[kind]) return text ? `${MEDIA_NAMES[kind]}: ${text}` : MEDIA_NAMES[kind];
  }
  return text;
}
