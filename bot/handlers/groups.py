"""Group chats: the citizen flow runs only in private chats, so groups get a polite pointer."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatMemberStatus, ParseMode

from bot.context import CustomContext
from bot.i18n import _


def _private_only_text(context: CustomContext) -> str:
    """Explain where tips are sent, with a link to the private chat."""
    t = context.translate
    return t.gettext(
        _(
            "Tips are received only in a private chat with the bot, so that nobody else sees "
            "them. Open @{username} and press Start."
        )
    ).format(username=context.bot.username)


async def on_added_to_group(update: Update, context: CustomContext) -> None:
    """The bot was added to a group: say what it does (and does not do) there."""
    change = update.my_chat_member
    if change is None or change.chat.type == "private":
        return
    joined = change.new_chat_member.status in (
        ChatMemberStatus.MEMBER,
        ChatMemberStatus.ADMINISTRATOR,
    )
    was_out = change.old_chat_member.status in (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED)
    if joined and was_out:
        await context.bot.send_message(
            change.chat.id, _private_only_text(context), parse_mode=ParseMode.HTML
        )


async def on_group_command(update: Update, context: CustomContext) -> None:
    """A command in a group: point to the private chat instead of running a flow here."""
    message = update.effective_message
    if message is None:
        return
    await message.reply_text(_private_only_text(context), parse_mode=ParseMode.HTML)


async def on_private_only_command(update: Update, context: CustomContext) -> None:
    """/audit, /staff, /revoke in a group: every member would read the answer, so refuse."""
    message = update.effective_message
    if message is None:
        return
    t = context.translate
    text = t.gettext(
        _(
            "This command works only in a private chat with the bot, so that the other members "
            "of this group do not read its answer. Open @{username} and send it there."
        )
    ).format(username=context.bot.username)
    await message.reply_text(text)
