/* One phone: a chat as its user sees it, and everything that user can do in it. */

import { renderMessage } from "./render.js";
import { ANSWER_TIMEOUT, TIME, TOAST_MS, api, avatar, fullName, h, readAsBase64, safeHref, snippetOf } from "./util.js";

export class Phone {
  constructor(app, spec, { removable = false } = {}) {
    this.app = app;
    this.spec = spec;
    this.key = spec.key;
    this.user = spec.user;
    this.chatId = spec.chat_id;
    this.isGroup = spec.kind === "group";
    this.messages = new Map(); // message id -> {view, element}
    this.replyTo = null; // the message the next one answers (after "Trả lời")
    this.selected = null; // the message whose menu is open
    this.unread = 0;
    this.loaded = false;
    this.toastTimer = null;
    this.keyboardTimer = null;
    this.removable = removable;
    this.element = this.build();
  }

  get title() {
    return this.isGroup ? this.spec.chat_title : this.app.config.bot.name;
  }

  build() {
    const spec = this.spec;
    const name = fullName(this.user);
    this.list = h("div", { class: "messages", role: "log", "aria-live": "polite" });
    this.input = h("input", {
      class: "text-input",
      type: "text",
      placeholder: "Tin nhắn",
      "aria-label": `Tin nhắn của ${name}`,
      onkeydown: (event) => {
        if (event.key === "Enter" && !event.isComposing) {
          event.preventDefault();
          this.submit();
        }
      },
    });
    this.photoInput = h("input", {
      class: "file-photo",
      type: "file",
      accept: "image/*",
      hidden: true,
      onchange: () => this.attachFile(this.photoInput, "photo"),
    });
    this.documentInput = h("input", {
      class: "file-document",
      type: "file",
      hidden: true,
      onchange: () => this.attachFile(this.documentInput, "document"),
    });
    this.replyBar = h(
      "div",
      { class: "reply-bar", hidden: true },
      h("span", { class: "icon" }, "↩"),
      h("div", { class: "info" }, h("b"), h("span")),
      h("button", { type: "button", title: "Hủy trả lời", onclick: () => this.cancelReply() }, "✕"),
    );
    const menuButton = this.isGroup
      ? null
      : h("button", { class: "menu", type: "button", onclick: () => this.toggleCommands() }, "☰ Menu");
    this.composer = h(
      "div",
      { class: "composer" },
      menuButton,
      h(
        "button",
        {
          class: "icon-button attach",
          type: "button",
          title: "Đính kèm",
          "aria-label": "Đính kèm",
          onclick: () => this.togglePopup(this.attachMenu),
        },
        "📎",
      ),
      this.input,
      h(
        "button",
        {
          class: "icon-button send",
          type: "button",
          title: "Gửi",
          "aria-label": "Gửi",
          onclick: () => this.submit(),
        },
        "➤",
      ),
    );
    this.startBar = h(
      "div",
      { class: "start-bar", hidden: true },
      h("button", { type: "button", onclick: () => this.sendText("/start") }, "BẮT ĐẦU"),
    );
    this.keyboard = h("div", { class: "reply-keyboard", hidden: true });
    this.attachMenu = h(
      "div",
      { class: "popup attach-menu", hidden: true },
      h("button", { type: "button", onclick: () => this.pick(this.photoInput) }, "🖼️ Ảnh từ máy"),
      h("button", { type: "button", onclick: () => this.pick(this.documentInput) }, "📄 Tệp"),
      h("button", { type: "button", onclick: () => this.togglePopup(this.placesMenu) }, "📍 Vị trí"),
    );
    this.placesMenu = h(
      "div",
      { class: "popup places", hidden: true },
      h("h3", {}, "Chia sẻ vị trí"),
      this.app.config.places.map((place) =>
        h(
          "button",
          { type: "button", onclick: () => this.sendLocation(place) },
          "📍 ",
          h("span", {}, place.label),
        ),
      ),
    );
    this.commandsMenu = h("div", { class: "popup commands", hidden: true });
    this.contextMenu = h(
      "div",
      { class: "popup context-menu", hidden: true },
      h("button", { type: "button", dataset: { act: "reply" }, onclick: () => this.startReply() }, "↩️ Trả lời"),
      h("button", { type: "button", dataset: { act: "copy" }, onclick: () => this.copySelected() }, "📋 Sao chép"),
    );
    this.toastBox = h("div", { class: "toast", role: "status", hidden: true });
    this.alertBox = h(
      "div",
      { class: "alert", hidden: true },
      h(
        "div",
        { class: "box", role: "alertdialog" },
        h("p"),
        h("button", { type: "button", onclick: () => (this.alertBox.hidden = true) }, "OK"),
      ),
    );
    const subtitle = this.isGroup ? "nhóm · hộp thư tin báo" : "bot";
    const device = h(
      "div",
      { class: "device" },
      h("div", { class: "statusbar" }, h("span", { class: "clock" }, TIME.format(new Date())), h("span", {}, "📶 🔋")),
      h(
        "div",
        { class: "chat-header" },
        h("span", { class: "back" }, "‹"),
        avatar(this.title, this.chatId),
        h("div", {}, h("div", { class: "title" }, this.title), h("div", { class: "subtitle" }, subtitle)),
      ),
      this.list,
      this.replyBar,
      this.composer,
      this.startBar,
      this.keyboard,
      this.attachMenu,
      this.placesMenu,
      this.commandsMenu,
      this.contextMenu,
      this.toastBox,
      this.alertBox,
      this.photoInput,
      this.documentInput,
    );
    device.addEventListener("click", (event) => {
      if (!event.target.closest(".popup, .attach, .menu, .bubble")) this.closePopups();
    });
    const caption = h(
      "div",
      { class: "phone-caption" },
      h(
        "div",
        {},
        h("span", { class: "role" }, spec.role),
        " ",
        h("span", { class: "who" }, name),
        spec.hint ? h("span", { class: "hint" }, spec.hint) : null,
      ),
      this.removable
        ? h("button", { class: "close", type: "button", title: "Bỏ điện thoại này", onclick: () => this.app.removePhone(this) }, "✕")
        : null,
    );
    return h(
      "section",
      { class: "phone", dataset: { phone: this.key }, "aria-label": `${spec.role}: ${name}` },
      caption,
      device,
    );
  }

  /* -- loading and live updates ---------------------------------------------------------- */

  async load(exists = true) {
    // A chat the emulator does not know yet (nobody wrote in it) is simply empty.
    let views = [];
    if (exists) {
      try {
        views = (await api("GET", `/control/chats/${this.chatId}/messages`)).messages;
      } catch (error) {
        if (error.status !== 404) this.toast(`Không tải được cuộc trò chuyện: ${error.message}`);
      }
    }
    this.messages.clear();
    this.list.replaceChildren();
    for (const view of views) this.apply(view, { quiet: true });
    this.loaded = true;
    this.refreshEmpty();
    this.scrollToEnd();
    if (views.length) await this.refreshKeyboard();
  }

  apply(view, { quiet = false } = {}) {
    const id = view.message_id;
    const known = this.messages.get(id);
    if (known && known.view.seq > view.seq) return; // an older state than shown
    const element = renderMessage(this, view);
    const nearEnd = this.isNearEnd();
    if (known) {
      known.element.replaceWith(element);
    } else {
      this.insertInOrder(id, element);
      if (!quiet && !this.isMine(view)) this.app.noteUnread(this);
    }
    this.messages.set(id, { view, element });
    this.refreshEmpty();
    if (!known && (nearEnd || this.isMine(view))) this.scrollToEnd();
    if (view.from_bot && !quiet) this.scheduleKeyboardRefresh();
  }

  drop(messageId) {
    const known = this.messages.get(messageId);
    if (!known) return;
    known.element.remove();
    this.messages.delete(messageId);
    this.refreshEmpty();
  }

  insertInOrder(id, element) {
    for (const child of this.list.children) {
      const childId = Number(child.dataset.id);
      if (childId > id) {
        this.list.insertBefore(element, child);
        return;
      }
    }
    this.list.append(element);
  }

  isMine(view) {
    return !view.from_bot && view.from && view.from.id === this.user.id;
  }

  isNearEnd() {
    const list = this.list;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
  }

  refreshEmpty() {
    const empty = this.messages.size === 0;
    const placeholder = this.list.querySelector(".empty-chat");
    if (empty && !placeholder) {
      const text = this.isGroup
        ? "Chưa có tin nhắn nào trong nhóm."
        : `${this.title} nhận tin báo về an ninh, trật tự một cách ẩn danh. Bấm BẮT ĐẦU để mở menu.`;
      this.list.append(h("div", { class: "empty-chat" }, text));
    } else if (!empty && placeholder) {
      placeholder.remove();
    }
    // An empty private chat with a bot shows Telegram's START button instead of the composer.
    const showStart = empty && !this.isGroup && this.loaded;
    this.startBar.hidden = !showStart;
    this.composer.hidden = showStart;
  }

  scheduleKeyboardRefresh() {
    clearTimeout(this.keyboardTimer);
    this.keyboardTimer = setTimeout(() => this.refreshKeyboard(), 120);
  }

  async refreshKeyboard() {
    let markup = null;
    try {
      markup = (await api("GET", `/control/chats/${this.chatId}`)).chat.keyboard;
    } catch (error) {
      markup = null;
    }
    this.keyboard.replaceChildren();
    const rows = (markup && markup.keyboard) || [];
    for (const row of rows) {
      this.keyboard.append(
        h(
          "div",
          { class: "row" },
          row.map((button) => {
            const label = typeof button === "string" ? button : button.text;
            return h("button", { type: "button", onclick: () => this.pressKeyboard(button) }, label);
          }),
        ),
      );
    }
    this.keyboard.hidden = rows.length === 0;
    if (markup && markup.input_field_placeholder) this.input.placeholder = markup.input_field_placeholder;
    else this.input.placeholder = "Tin nhắn";
  }

  flash(messageId) {
    const known = this.messages.get(messageId);
    if (!known) return;
    known.element.scrollIntoView({ block: "center", behavior: "smooth" });
    known.element.classList.remove("flash");
    void known.element.offsetWidth;
    known.element.classList.add("flash");
  }

  /* -- acting as the phone's user -------------------------------------------------------- */

  async post(fields) {
    const body = { user: this.user, ...fields };
    if (this.isGroup) {
      body.chat_id = this.chatId;
      body.chat_title = this.spec.chat_title;
    }
    if (this.replyTo !== null) {
      body.reply_to = this.replyTo;
      this.cancelReply();
    }
    try {
      await api("POST", "/control/messages", body);
    } catch (error) {
      this.toast(`Không gửi được: ${error.message}`);
    }
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.value = "";
    this.sendText(text);
  }

  sendText(text) {
    this.closePopups();
    return this.post({ text });
  }

  sendLocation(place) {
    this.closePopups();
    return this.post({ location: { latitude: place.latitude, longitude: place.longitude } });
  }

  pick(input) {
    this.closePopups();
    input.value = "";
    input.click();
  }

  async attachFile(input, kind) {
    const file = input.files && input.files[0];
    if (!file) return;
    const data = await readAsBase64(file);
    const isImage = kind === "photo" && /^image\//.test(file.type || "image/");
    const caption = this.input.value.trim();
    this.input.value = "";
    const media = { kind: isImage ? "photo" : "document", data, filename: file.name };
    if (!isImage && file.type) media.mime_type = file.type;
    const fields = { media };
    if (caption) fields.caption = caption;
    await this.post(fields);
    input.value = "";
  }

  async pressInline(view, button, element) {
    if (button.url) {
      const href = safeHref(button.url);
      if (href) window.open(href, "_blank", "noopener");
      return;
    }
    if (button.copy_text) {
      this.copy(button.copy_text.text || "");
      return;
    }
    if (button.callback_data === undefined) {
      this.toast("Bản demo chưa hỗ trợ loại nút này.");
      return;
    }
    element.classList.add("pending");
    try {
      const pressed = await api("POST", "/control/callbacks", {
        user: this.user,
        chat_id: this.chatId,
        message_id: view.message_id,
        data: button.callback_data,
      });
      const { answer } = await api(
        "GET",
        `/control/callbacks/${encodeURIComponent(pressed.callback_query_id)}?timeout=${ANSWER_TIMEOUT}`,
      );
      if (answer && answer.text) {
        if (answer.show_alert) this.alert(answer.text);
        else this.toast(answer.text);
      }
      if (answer && answer.url) window.open(answer.url, "_blank", "noopener");
    } catch (error) {
      this.toast(`Không bấm được nút: ${error.message}`);
    } finally {
      element.classList.remove("pending");
    }
  }

  pressKeyboard(button) {
    if (typeof button === "object" && button.request_location) {
      this.togglePopup(this.placesMenu);
      return;
    }
    this.sendText(typeof button === "string" ? button : button.text);
  }

  /* -- replies, menus, popups ------------------------------------------------------------ */

  openContextMenu(messageId, bubble) {
    this.closePopups();
    this.selected = messageId;
    const device = this.element.querySelector(".device");
    const box = bubble.getBoundingClientRect();
    const frame = device.getBoundingClientRect();
    const menu = this.contextMenu;
    menu.hidden = false;
    const listBottom = this.list.getBoundingClientRect().bottom - frame.top;
    const top = Math.min(box.bottom - frame.top + 4, listBottom - menu.offsetHeight - 6);
    const left = Math.min(Math.max(box.left - frame.left, 8), frame.width - menu.offsetWidth - 8);
    menu.style.top = `${Math.max(top, 60)}px`;
    menu.style.left = `${left}px`;
    menu.style.bottom = "auto";
  }

  startReply() {
    const known = this.messages.get(this.selected);
    this.closePopups();
    if (!known) return;
    this.replyTo = this.selected;
    const view = known.view;
    const name = view.from_bot ? this.app.config.bot.name : fullName(view.from);
    this.replyBar.querySelector("b").textContent = `Trả lời ${name}`;
    this.replyBar.querySelector(".info span").textContent = snippetOf(view.message);
    this.replyBar.hidden = false;
    this.input.focus();
  }

  cancelReply() {
    this.replyTo = null;
    this.replyBar.hidden = true;
  }

  copySelected() {
    const known = this.messages.get(this.selected);
    this.closePopups();
    if (known) this.copy(known.view.text || known.view.caption || "");
  }

  async copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      this.toast("Đã sao chép");
    } catch (error) {
      this.input.value = `${this.input.value}${text}`;
      this.toast("Đã chép vào ô soạn tin");
    }
  }

  async toggleCommands() {
    const menu = this.commandsMenu;
    if (!menu.hidden) {
      this.closePopups();
      return;
    }
    let commands = [];
    try {
      commands = (await api("GET", "/control/commands")).commands || [];
    } catch (error) {
      commands = [];
    }
    menu.replaceChildren(h("h3", {}, "Lệnh của bot"));
    if (commands.length === 0) menu.append(h("button", { type: "button", disabled: true }, "Bot chưa khai báo lệnh nào."));
    for (const command of commands) {
      menu.append(
        h(
          "button",
          { type: "button", onclick: () => this.sendText(`/${command.command}`) },
          h("b", {}, `/${command.command}`),
          h("small", {}, command.description),
        ),
      );
    }
    this.togglePopup(menu);
  }

  togglePopup(popup) {
    const wasHidden = popup.hidden;
    this.closePopups();
    popup.hidden = !wasHidden;
  }

  closePopups() {
    for (const popup of [this.attachMenu, this.placesMenu, this.commandsMenu, this.contextMenu]) popup.hidden = true;
  }

  toast(text) {
    this.toastBox.textContent = text;
    this.toastBox.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (this.toastBox.hidden = true), TOAST_MS);
  }

  alert(text) {
    this.alertBox.querySelector("p").textContent = text;
    this.alertBox.hidden = false;
  }
}
