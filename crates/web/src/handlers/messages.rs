//! Dialogs: the list, one dialog, sending a message.

use agora_dialogs::DialogsError;
use agora_platform::ids::{MessageId, UserId};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{
    DIALOG_PAGE, DIALOGS_LISTED, IdPath, Params, SignedInForm, TextForm, chrome, full_name,
    number_param, refused_text, render, see_other,
};
use crate::Web;
use crate::error::WebError;
use crate::pages::*;
use crate::session::{Me, SignedIn, Viewer};

pub(super) async fn messages(
    State(web): State<Web>,
    SignedIn(viewer, me): SignedIn,
) -> Result<Response, WebError> {
    let Some(dialogs) = web.dialogs() else {
        let page = MessagesPage {
            chrome: chrome(&web, "Messages", &viewer),
            available: false,
            dialogs: Vec::new(),
        };
        return render(StatusCode::OK, &viewer, page);
    };
    let entries = dialogs.dialogs_of(UserId(me.id), DIALOGS_LISTED).await?;
    let ids: Vec<i64> = entries.iter().map(|entry| entry.with.0).collect();
    let users = web.profiles().many(web.social(), &ids, Some(me.id)).await?;
    let lines = entries
        .into_iter()
        .map(|entry| {
            let with = entry.with.0;
            DialogLine {
                with: Person {
                    id: with,
                    name: users
                        .get(&with)
                        .map_or_else(|| format!("user {with}"), |user| full_name(user)),
                    city: None,
                },
                last_from_me: entry.last_message.from.0 == me.id,
                last_text: entry.last_message.text,
            }
        })
        .collect();
    let page = MessagesPage {
        chrome: chrome(&web, "Messages", &viewer),
        available: true,
        dialogs: lines,
    };
    render(StatusCode::OK, &viewer, page)
}

pub(super) async fn dialog(
    State(web): State<Web>,
    SignedIn(viewer, me): SignedIn,
    IdPath(id): IdPath,
    Query(params): Params,
) -> Result<Response, WebError> {
    let before = number_param(&params, "before");
    dialog_page(
        &web,
        &viewer,
        &me,
        id,
        before,
        Field::default(),
        StatusCode::OK,
    )
    .await
}

pub(super) async fn dialog_page(
    web: &Web,
    viewer: &Viewer,
    me: &Me,
    other: i64,
    before: Option<i64>,
    draft: Field,
    status: StatusCode,
) -> Result<Response, WebError> {
    let dialogs = web
        .dialogs()
        .ok_or(WebError::NotFound("dialogs are not served by this process"))?;
    if other == me.id {
        return Err(WebError::BadRequest(
            "there is no dialog with yourself".into(),
        ));
    }
    let user = web.profiles().one(web.social(), other, Some(me.id)).await?;
    let mut messages = dialogs
        .list(
            UserId(me.id),
            UserId(other),
            before.map(MessageId),
            DIALOG_PAGE,
        )
        .await?;
    let older = (messages.len() as i64 == DIALOG_PAGE)
        .then(|| messages.last().map(|message| message.id.0))
        .flatten();
    messages.reverse();
    let page = DialogPage {
        chrome: chrome(web, format!("Messages with {}", full_name(&user)), viewer),
        with: Person {
            id: user.id,
            name: full_name(&user),
            city: None,
        },
        messages: messages
            .into_iter()
            .map(|message| MessageView {
                mine: message.from.0 == me.id,
                text: message.text,
            })
            .collect(),
        older,
        draft,
    };
    render(status, viewer, page)
}

pub(super) async fn send_message(
    State(web): State<Web>,
    IdPath(id): IdPath,
    SignedInForm(viewer, me, form): SignedInForm<TextForm>,
) -> Result<Response, WebError> {
    let dialogs = web
        .dialogs()
        .ok_or(WebError::NotFound("dialogs are not served by this process"))?;
    match dialogs.send(UserId(me.id), UserId(id), &form.text).await {
        Ok(_) => Ok(see_other(&format!("/messages/{id}"))),
        Err(DialogsError::InvalidInput(message)) => {
            let draft = refused_text(form.text, &message, "The message");
            dialog_page(&web, &viewer, &me, id, None, draft, StatusCode::BAD_REQUEST).await
        }
        Err(error) => Err(error.into()),
    }
}
