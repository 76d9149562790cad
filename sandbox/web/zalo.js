/* A citizen on Zalo: the Official Account chat as the Zalo app shows it (plain text, numbered
 * choices typed back as numbers), over the Zalo OA emulator's control API. */

import { TIME, api, h } from "./util.js";

export class ZaloPhone {
  constructor(app, spec) {
    this.app = app;
    this.spec = spec;
    this.key = "zalo";
    this.api = spec.api;
    this.chatId = spec.chat_id;
    this.shown = 0; // how many transcript entries are on screen
    this.unread = 0;
    this.polling = false;
    this.element = this.build();
  }

  build() {
    this.list = h("div", { class: "zalo-messages", role: "log", "aria-live": "polite" });
    this.input = h("input", {
      class: "zalo-input",
      type: "text",
      placeholder: "Nhập tin nhắn",
      "aria-label": `Tin nhắn Zalo của ${this.spec.display_name}`,
      onkeydown: (event) => {
        if (event.key === "Enter" && !event.isComposing) {
          event.preventDefault();
          this.submit();
        }
      },
    });
    this.followButton = h(
      "button",
      { class: "zalo-follow", type: "button", onclick: () => this.follow() },
      "Quan tâm",
    );
    const device = h(
      "div",
      { class: "device zalo" },
      h("div", { class: "statusbar" }, h("span", { class: "clock" }, TIME.format(new Date())), h("span", {}, "📶 🔋")),
      h(
        "div",
        { class: "zalo-header" },
        h("span", { class: "back", "aria-hidden": "true" }, "‹"),
        h("div", { class: "zalo-title" }, h("b", {}, this.spec.title), h("small", {}, "Official Account")),
        this.followButton,
      ),
      this.list,
      h(
        "div",
        { class: "zalo-composer" },
        this.input,
        h("button", { class: "zalo-send", type: "button", "aria-label": "Gửi", onclick: () => this.submit() }, "➤"),
      ),
    );
    return h(
      "section",
      { class: "phone", dataset: { phone: "zalo" } },
      h(
        "div",
        { class: "phone-caption" },
        h("span", { class: "role" }, this.spec.role),
        h("span", { class: "who" }, this.spec.display_name),
        h("span", { class: "hint" }, this.spec.hint || ""),
      ),
      device,
    );
  }

  async load() {
    await this.refresh();
    this.poll();
  }

  async refresh() {
    let messages;
    try {
      messages = (await api("GET", `${this.api}/control/chats/${this.chatId}/messages`)).messages;
    } catch (error) {
      return; // no chat yet: the first message or "Quan tâm" opens it
    }
    for (const message of messages.slice(this.shown)) this.show(message);
    this.shown = messages.length;
  }

  async poll() {
    if (this.polling) return;
    this.polling = true;
    while (this.polling) {
      try {
        const url = `${this.api}/control/chats/${this.chatId}/wait?count=${this.botCount() + 1}&timeout=20`;
        await api("GET", url);
      } catch (error) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      await this.refresh();
    }
  }

  botCount() {
    return this.list.querySelectorAll(".zalo-bubble.in").length;
  }

  show(message) {
    const incoming = message.from === "bot";
    const text = message.text || (message.type === "image" ? "🖼️ Ảnh" : message.type === "sticker" ? "🙂 Nhãn dán" : "");
    const bubble = h(
      "div",
      { class: `zalo-bubble ${incoming ? "in" : "out"}`, dataset: { type: message.type || "text" } },
      message.type === "promotion" ? h("span", { class: "zalo-tag" }, "Tin truyền thông") : null,
      h("div", { class: "zalo-text" }, text),
      h("time", {}, TIME.format(message.date ? new Date(message.date) : new Date())),
    );
    this.list.append(bubble);
    this.list.scrollTop = this.list.scrollHeight;
    if (incoming) this.app.noteUnread(this);
  }

  async send(body) {
    const sent = await api("POST", `${this.api}/control/messages`, {
      user: this.spec.user,
      display_name: this.spec.display_name,
      ...body,
    });
    this.chatId = sent.chat_id;
    await this.refresh();
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.value = "";
    await this.send({ text });
  }

  async follow() {
    await api("POST", `${this.api}/control/follow`, {
      user: this.spec.user,
      display_name: this.spec.display_name,
      followed: true,
    });
    this.followButton.textContent = "Đã quan tâm";
    this.followButton.disabled = true;
    await this.refresh();
  }
}
