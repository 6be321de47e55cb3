//! Routes and thin handlers: read the request, call the social network or dialogs, pick a page.
//! Every form that changes something carries the viewer's CSRF token and answers with a
//! redirect (303), so a reload never sends it twice.

use std::collections::HashMap;

use agora_dialogs::DialogsError;
use agora_platform::http::ClientAddress;
use agora_platform::ids::{self, IdParts, MessageId, UserId};
use agora_social::SocialError;
use agora_social::domain::{self, NameSearch, NewUser, Registration, SEARCH_RESULT_CAP};
use askama::Template;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::Web;
use crate::assets;
use crate::error::WebError;
use crate::pages::*;
use crate::session::{Me, SignedIn, Viewer, cleared_session_cookie, local_target, session_cookie};

const FEED_PAGE: usize = 20;
const POSTS_PAGE: i64 = 20;
const SEARCH_PAGE: usize = 20;
const DIALOG_PAGE: i64 = 30;
const DIALOGS_LISTED: i64 = 50;
/// How far before the newest post it has the live feed asks to be replayed from: a post may
/// be committed this long after a newer one (a slow transaction), and would otherwise be
/// skipped on a reconnect.
const LIVE_LOOK_BACK_MS: i64 = 30_000;

fn live_look_back() -> i64 {
    ids::compose(IdParts {
        unix_ms: ids::EPOCH_UNIX_MS + LIVE_LOOK_BACK_MS,
        shard: 0,
        sequence: 0,
    })
}

pub fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/signup", get(signup_form).post(signup))
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/posts", post(create_post))
        .route("/posts/{id}", get(post_page))
        .route("/posts/{id}/edit", post(edit_post))
        .route("/posts/{id}/delete", post(delete_post))
        .route("/people", get(search))
        .route("/people/{id}", get(user_page))
        .route("/people/{id}/friend", post(befriend))
        .route("/people/{id}/unfriend", post(unfriend))
        .route("/messages", get(messages))
        .route("/messages/{id}", get(dialog).post(send_message))
        .route("/assets/{name}", get(assets::serve))
        .layer(middleware::from_fn(crate::context::scope))
        .layer(middleware::map_response(with_page_headers))
        .with_state(web)
}

/// Pages load only this server's script and style, cannot be framed, and are not cached
/// (they show one person's data); assets set their own caching first.
pub fn page_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

async fn with_page_headers(mut response: Response) -> Response {
    page_headers(response.headers_mut());
    response
}

fn render(status: StatusCode, viewer: &Viewer, page: impl Template) -> Result<Response, WebError> {
    Ok(viewer.finish((status, Html(page.render()?)).into_response()))
}

fn see_other(target: &str) -> Response {
    Redirect::to(target).into_response()
}

/// A form body; one that cannot be read is a 400 page.
pub struct FormData<T>(T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequest<S> for FormData<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The form extractor decodes invalid UTF-8 into U+FFFD: read the body first and refuse
        // it, as the API does.
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
        // Bytes honours the router's body limit, as Form does.
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                WebError::Rejected(
                    rejection.status(),
                    format!("the form could not be read ({})", rejection.body_text()),
                )
            })?;
        if !agora_platform::http::form_decodes_to_utf8(&bytes) {
            return Err(WebError::Rejected(
                StatusCode::BAD_REQUEST,
                "the form is not valid UTF-8".to_owned(),
            ));
        }
        let mut request = Request::new(axum::body::Body::from(bytes));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        if let Some(content_type) = content_type {
            request
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
        }
        Form::<T>::from_request(request, state)
            .await
            .map(|Form(value)| FormData(value))
            .map_err(|rejection: FormRejection| {
                WebError::Rejected(
                    rejection.status(),
                    format!("the form could not be read ({})", rejection.body_text()),
                )
            })
    }
}

/// An id in the path; anything else is a page that does not exist.
pub struct IdPath(i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(text) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| WebError::NotFound("no such page"))?;
        agora_platform::ids::parse(&text)
            .map(IdPath)
            .ok_or(WebError::NotFound("no such page"))
    }
}

/// Query parameters read leniently: a person edits URLs by hand, and an odd parameter should
/// give a sensible page rather than an error.
type Params = Query<HashMap<String, String>>;

fn number_param(params: &HashMap<String, String>, name: &str) -> Option<i64> {
    params
        .get(name)
        .and_then(|value| value.parse::<i64>().ok())
        .filter(|value| *value > 0)
}

fn page_param(params: &HashMap<String, String>) -> usize {
    number_param(params, "page").map_or(1, |page| page as usize)
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
struct TextForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
}

fn dialogs_enabled(web: &Web) -> bool {
    web.dialogs().is_some()
}

fn chrome(web: &Web, title: impl Into<String>, viewer: &Viewer) -> Chrome {
    Chrome::new(title, viewer, dialogs_enabled(web))
}

fn full_name(user: &agora_social::service::User) -> String {
    format!("{} {}", user.first_name, user.second_name)
}

fn profile(user: &agora_social::service::User) -> Profile {
    Profile {
        id: user.id,
        name: full_name(user),
        birthdate: user.birthdate.map(domain::format_date),
        city: user.city.clone(),
        biography: user.biography.clone(),
    }
}

/// Posts with their authors' names, in the order given.
async fn with_authors(
    web: &Web,
    posts: Vec<(i64, i64, String)>,
    reader: Option<i64>,
) -> Result<Vec<PostView>, WebError> {
    let mut author_ids: Vec<i64> = posts.iter().map(|(_, author, _)| *author).collect();
    author_ids.sort_unstable();
    author_ids.dedup();
    let names: HashMap<i64, String> = web
        .profiles()
        .many(web.social(), &author_ids, reader)
        .await?
        .into_iter()
        .map(|(id, user)| (id, full_name(&user)))
        .collect();
    Ok(posts
        .into_iter()
        .map(|(id, author_id, text)| PostView {
            id,
            author_id,
            author: names
                .get(&author_id)
                .cloned()
                .unwrap_or_else(|| format!("user {author_id}")),
            text,
        })
        .collect())
}

// ---------------------------------------------------------------- home --

async fn home(
    State(web): State<Web>,
    SignedIn(viewer, me): SignedIn,
    Query(params): Params,
) -> Result<Response, WebError> {
    let posted = number_param(&params, "posted");
    home_page(
        &web,
        &viewer,
        &me,
        page_param(&params),
        Field::default(),
        posted,
        StatusCode::OK,
    )
    .await
}

async fn home_page(
    web: &Web,
    viewer: &Viewer,
    me: &Me,
    page: usize,
    draft: Field,
    posted: Option<i64>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let offset = (page - 1).saturating_mul(FEED_PAGE);
    if offset > domain::MAX_FEED_OFFSET {
        return Err(WebError::NotFound("the feed does not go back that far"));
    }
    let feed = web.social().feed_page(me.id, offset, FEED_PAGE).await?;
    let truncated = feed.truncated;
    let full = feed.posts.len() == FEED_PAGE || truncated;
    // Where the live feed resumes: the newest post shown, or now when there is none.
    let live_since = feed.posts.first().map_or_else(
        || {
            ids::compose(IdParts {
                unix_ms: time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000,
                shard: 0,
                sequence: 0,
            })
        },
        |post| post.id,
    );
    let posts = feed
        .posts
        .into_iter()
        .map(|post| (post.id, post.author_id, post.text))
        .collect();
    let feed = with_authors(web, posts, Some(me.id)).await?;
    let page_view = HomePage {
        chrome: chrome(web, "Home", viewer).with_live_script(),
        me: profile(&me.profile),
        draft,
        feed,
        page,
        newer: (page > 1).then(|| page - 1),
        older: (full && page * FEED_PAGE <= domain::MAX_FEED_OFFSET).then_some(page + 1),
        live_since: live_since.to_string(),
        live_look_back: live_look_back().to_string(),
        truncated,
        posted,
    };
    render(status, viewer, page_view)
}

async fn create_post(
    State(web): State<Web>,
    SignedIn(viewer, me): SignedIn,
    FormData(form): FormData<TextForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let text = match domain::post_text(Some(form.text.clone())) {
        Ok(text) => text,
        Err(error) => {
            let draft = Field {
                value: form.text,
                error: Some(sentence(&error.to_string(), &["text"], "Your post")),
            };
            return home_page(&web, &viewer, &me, 1, draft, None, StatusCode::BAD_REQUEST).await;
        }
    };
    let id = web.social().create_post(me.id, &text).await?;
    Ok(see_other(&format!("/?posted={id}")))
}

/// A domain message ("first_name is required") worded for a form ("First name is required").
fn sentence(message: &str, fields: &[&str], label: &str) -> String {
    for field in fields {
        if let Some(rest) = message.strip_prefix(field) {
            return format!("{label}{rest}.");
        }
    }
    let mut text = message.to_owned();
    if let Some(first) = text.get(0..1) {
        text.replace_range(0..1, &first.to_uppercase());
    }
    format!("{text}.")
}

// ------------------------------------------------------------- account --

#[derive(Deserialize, Default)]
struct SignUpForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    second_name: String,
    #[serde(default)]
    birthdate: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    biography: String,
    #[serde(default)]
    password: String,
}

fn signup_page(web: &Web, viewer: &Viewer, form: &SignUpForm) -> SignUpPage {
    SignUpPage {
        chrome: chrome(web, "Sign up", viewer),
        first_name: Field::of(&form.first_name),
        second_name: Field::of(&form.second_name),
        birthdate: Field::of(&form.birthdate),
        city: Field::of(&form.city),
        biography: Field::of(&form.biography),
        password: Field::default(),
        form_error: None,
    }
}

async fn signup_form(State(web): State<Web>, viewer: Viewer) -> Result<Response, WebError> {
    if viewer.me.is_some() {
        return Ok(see_other("/"));
    }
    render(
        StatusCode::OK,
        &viewer,
        signup_page(&web, &viewer, &SignUpForm::default()),
    )
}

fn optional(value: &str) -> Option<String> {
    (!value.trim().is_empty()).then(|| value.to_owned())
}

async fn signup(
    State(web): State<Web>,
    viewer: Viewer,
    ClientAddress(client): ClientAddress,
    FormData(form): FormData<SignUpForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let parsed = NewUser::parse(Registration {
        first_name: Some(form.first_name.clone()),
        second_name: Some(form.second_name.clone()),
        birthdate: optional(&form.birthdate),
        biography: optional(&form.biography),
        city: optional(&form.city),
        password: Some(form.password.clone()),
    });
    let user = match parsed {
        Ok(user) => user,
        Err(SocialError::InvalidInput(message)) => {
            let mut page = signup_page(&web, &viewer, &form);
            let fields: [(&str, &str, &mut Field); 6] = [
                ("first_name", "First name", &mut page.first_name),
                ("second_name", "Surname", &mut page.second_name),
                ("birthdate", "Birthdate", &mut page.birthdate),
                ("biography", "About you", &mut page.biography),
                ("city", "City", &mut page.city),
                ("password", "Password", &mut page.password),
            ];
            let mut placed = false;
            for (name, label, field) in fields {
                if message.starts_with(name) {
                    field.error = Some(sentence(&message, &[name], label));
                    placed = true;
                    break;
                }
            }
            if !placed {
                page.form_error = Some(sentence(&message, &[], ""));
            }
            return render(StatusCode::BAD_REQUEST, &viewer, page);
        }
        Err(error) => return Err(error.into()),
    };
    let password = user.password.clone();
    let id = web.social().register(user).await?;
    let token = match web.social().login(id, password, client).await {
        Ok(token) => token,
        // The account exists now: whatever kept the session from opening, its id must not be
        // lost, since it is the only way to sign in.
        Err(error) => {
            tracing::warn!(%error, id, "signed up, but the first sign-in failed");
            let mut page = signin_page(&web, &viewer, &id.to_string(), "/");
            page.notice = Some(format!(
                "Your account is created. Your id is {id}: sign in with it and your password."
            ));
            return render(StatusCode::OK, &viewer, page);
        }
    };
    let mut response = see_other("/");
    response.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(&web, &token, viewer.secure()),
    );
    Ok(response)
}

#[derive(Deserialize, Default)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

fn signin_page(web: &Web, viewer: &Viewer, id: &str, next: &str) -> SignInPage {
    SignInPage {
        chrome: chrome(web, "Sign in", viewer),
        id: Field::of(id),
        password: Field::default(),
        next: local_target(Some(next)).to_owned(),
        form_error: None,
        notice: None,
    }
}

async fn signin_form(
    State(web): State<Web>,
    viewer: Viewer,
    Query(params): Params,
) -> Result<Response, WebError> {
    let next = params.get("next").map_or("/", String::as_str);
    if viewer.me.is_some() {
        return Ok(see_other(local_target(Some(next))));
    }
    render(
        StatusCode::OK,
        &viewer,
        signin_page(&web, &viewer, "", next),
    )
}

async fn signin(
    State(web): State<Web>,
    viewer: Viewer,
    ClientAddress(client): ClientAddress,
    FormData(form): FormData<SignInForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let mut page = signin_page(&web, &viewer, form.id.trim(), &form.next);
    let Some(id) = agora_platform::ids::parse(form.id.trim()) else {
        page.id.error = Some("Enter the number agora gave you when you signed up.".into());
        return render(StatusCode::BAD_REQUEST, &viewer, page);
    };
    if form.password.is_empty() {
        page.password.error = Some("Enter your password.".into());
        return render(StatusCode::BAD_REQUEST, &viewer, page);
    }
    match web.social().login(id, form.password, client).await {
        Ok(token) => {
            let mut response = see_other(&page.next);
            response.headers_mut().append(
                header::SET_COOKIE,
                session_cookie(&web, &token, viewer.secure()),
            );
            Ok(response)
        }
        // Which of the two was wrong is not said: ids are easy to guess.
        Err(SocialError::NotFound(_) | SocialError::InvalidInput(_)) => {
            page.form_error = Some("Wrong id or password.".into());
            render(StatusCode::BAD_REQUEST, &viewer, page)
        }
        Err(SocialError::TooManyAttempts(secs)) => {
            page.form_error = Some(format!(
                "Too many failed attempts. Try again in {} minutes.",
                secs.div_ceil(60).max(1)
            ));
            let mut response = render(StatusCode::TOO_MANY_REQUESTS, &viewer, page)?;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            Ok(response)
        }
        Err(error) => Err(error.into()),
    }
}

async fn signout(
    State(web): State<Web>,
    viewer: Viewer,
    FormData(form): FormData<CsrfOnly>,
) -> Result<Response, WebError> {
    let secure = viewer.secure();
    if let Some(me) = &viewer.me {
        viewer.check_csrf(&form.csrf)?;
        web.social().logout(&me.token).await?;
    }
    let mut response = see_other("/signin");
    response
        .headers_mut()
        .append(header::SET_COOKIE, cleared_session_cookie(secure));
    Ok(response)
}

// -------------------------------------------------------------- people --

async fn search(
    State(web): State<Web>,
    viewer: Viewer,
    Query(params): Params,
) -> Result<Response, WebError> {
    let first = params.get("first_name").cloned();
    let last = params.get("last_name").cloned();
    let searched = first.is_some() || last.is_some();
    let mut page = SearchPage {
        chrome: chrome(&web, "People", &viewer),
        first_name: Field::of(first.as_deref().unwrap_or("")),
        last_name: Field::of(last.as_deref().unwrap_or("")),
        searched,
        results: Vec::new(),
        total: 0,
        first_shown: 0,
        page: page_param(&params),
        newer: None,
        older: None,
        capped: false,
        error: None,
    };
    if !searched {
        return render(StatusCode::OK, &viewer, page);
    }
    let query = NameSearch::parse(
        Some(first.unwrap_or_default()),
        Some(last.unwrap_or_default()),
    );
    let query = match query {
        Ok(query) => query,
        Err(SocialError::InvalidInput(message)) => {
            page.error = Some(if message.contains("both be empty") {
                "Type the start of a first name, a surname, or both.".to_owned()
            } else {
                sentence(
                    &message,
                    &["first_name", "last_name"],
                    if message.starts_with("first") {
                        "First name"
                    } else {
                        "Surname"
                    },
                )
            });
            return render(StatusCode::BAD_REQUEST, &viewer, page);
        }
        Err(error) => return Err(error.into()),
    };
    let reader = viewer.me.as_ref().map(|me| me.id);
    let found = web.social().search(&query, reader).await?;
    page.total = found.len();
    page.capped = found.len() as i64 >= SEARCH_RESULT_CAP;
    let pages = found.len().div_ceil(SEARCH_PAGE).max(1);
    page.page = page.page.min(pages);
    let start = (page.page - 1) * SEARCH_PAGE;
    page.first_shown = start + 1;
    page.newer = (page.page > 1).then(|| page.page - 1);
    page.older = (page.page < pages).then(|| page.page + 1);
    page.results = found
        .into_iter()
        .skip(start)
        .take(SEARCH_PAGE)
        .map(|user| Person {
            id: user.id,
            name: full_name(&user),
            city: user.city,
        })
        .collect();
    render(StatusCode::OK, &viewer, page)
}

async fn user_page(
    State(web): State<Web>,
    viewer: Viewer,
    IdPath(id): IdPath,
    Query(params): Params,
) -> Result<Response, WebError> {
    let reader = viewer.me.as_ref().map(|me| me.id);
    let before = number_param(&params, "before");
    let following = async {
        match reader {
            Some(me) if me != id => web.social().is_friend(me, id).await.map(Some),
            Some(_) => Ok(Some(false)),
            None => Ok(None),
        }
    };
    let (user, mut posts, is_friend) = tokio::try_join!(
        web.profiles().one(web.social(), id, reader),
        web.social()
            .posts_by_author(id, before, POSTS_PAGE + 1, reader),
        following,
    )?;
    let older = (posts.len() as i64 > POSTS_PAGE).then(|| {
        posts.truncate(POSTS_PAGE as usize);
        posts.last().map(|post| post.id)
    });
    let name = full_name(&user);
    let posts = posts
        .into_iter()
        .map(|post| PostView {
            id: post.id,
            author_id: post.author_id,
            author: name.clone(),
            text: post.text,
        })
        .collect();
    let notice = match params.get("notice").map(String::as_str) {
        Some("befriended") => Some(format!(
            "You follow {name}: their posts appear in your feed."
        )),
        Some("unfriended") => Some(format!("You no longer follow {name}.")),
        Some("deleted") => Some("Your post was deleted.".to_owned()),
        _ => None,
    };
    let page = UserPage {
        chrome: chrome(&web, name, &viewer),
        is_me: reader == Some(id),
        user: profile(&user),
        is_friend,
        posts,
        older: older.flatten(),
        notice,
    };
    render(StatusCode::OK, &viewer, page)
}

async fn befriend(
    State(web): State<Web>,
    SignedIn(viewer, me): SignedIn,
    IdPath(id): IdPath,
    FormData(form): FormData<CsrfOnly>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    web.social().add_friend(me.id, id).await?;
    Ok(see_other(&format!("/people/{id}?notice=befriended")))
}

async fn unfriend(
    State(web): State<Web>,
    SignedIn(viewer, me): SignedIn,
    IdPath(id): IdPath,
    FormData(form): FormData<CsrfOnly>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    web.social().remove_friend(me.id, id).await?;
    Ok(see_other(&format!("/people/{id}?notice=unfriended")))
}

// --------------------------------------------------------------- posts --

async fn post_page(
    State(web): State<Web>,
    viewer: Viewer,
    IdPath(id): IdPath,
    Query(params): Params,
) -> Result<Response, WebError> {
    let notice =
        (params.get("notice").map(String::as_str) == Some("saved")).then(|| "Saved.".to_owned());
    show_post(&web, &viewer, id, None, notice, StatusCode::OK).await
}

async fn show_post(
    web: &Web,
    viewer: &Viewer,
    id: i64,
    draft: Option<Field>,
    notice: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let reader = viewer.me.as_ref().map(|me| me.id);
    let post = web.social().post(id, reader).await?;
    let author = web
        .profiles()
        .one(web.social(), post.author_id, reader)
        .await?;
    let page = PostPage {
        chrome: chrome(web, format!("Post by {}", full_name(&author)), viewer),
        mine: reader == Some(post.author_id),
        draft: draft.unwrap_or_else(|| Field::of(&post.text)),
        post: PostView {
            id: post.id,
            author_id: post.author_id,
            author: full_name(&author),
            text: post.text,
        },
        notice,
    };
    render(status, viewer, page)
}

async fn edit_post(
    State(web): State<Web>,
    SignedIn(viewer, me): SignedIn,
    IdPath(id): IdPath,
    FormData(form): FormData<TextForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let text = match domain::post_text(Some(form.text.clone())) {
        Ok(text) => text,
        Err(error) => {
            let draft = Field {
                value: form.text,
                error: Some(sentence(&error.to_string(), &["text"], "The text")),
            };
            return show_post(
                &web,
                &viewer,
                id,
                Some(draft),
                None,
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    web.social().update_post(me.id, id, &text).await?;
    Ok(see_other(&format!("/posts/{id}?notice=saved")))
}

async fn delete_post(
    State(web): State<Web>,
    SignedIn(viewer, me): SignedIn,
    IdPath(id): IdPath,
    FormData(form): FormData<CsrfOnly>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    web.social().delete_post(me.id, id).await?;
    Ok(see_other(&format!("/people/{}?notice=deleted", me.id)))
}

// ------------------------------------------------------------ messages --

async fn messages(
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

async fn dialog(
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

async fn dialog_page(
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

async fn send_message(
    State(web): State<Web>,
    SignedIn(viewer, me): SignedIn,
    IdPath(id): IdPath,
    FormData(form): FormData<TextForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let dialogs = web
        .dialogs()
        .ok_or(WebError::NotFound("dialogs are not served by this process"))?;
    match dialogs.send(UserId(me.id), UserId(id), &form.text).await {
        Ok(_) => Ok(see_other(&format!("/messages/{id}"))),
        Err(DialogsError::InvalidInput(message)) => {
            let draft = Field {
                value: form.text,
                error: Some(sentence(&message, &["text"], "The message")),
            };
            dialog_page(&web, &viewer, &me, id, None, draft, StatusCode::BAD_REQUEST).await
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Note {
        text: String,
    }

    async fn read(body: &'static [u8]) -> Result<String, WebError> {
        let request = Request::builder()
            .method("POST")
            .uri("/notes")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .unwrap();
        FormData::<Note>::from_request(request, &())
            .await
            .map(|FormData(note)| note.text)
    }

    #[tokio::test]
    async fn a_form_with_invalid_utf8_is_refused_not_stored_as_replacement_characters() {
        assert_eq!(
            read(b"text=caf%C3%A9+au+lait").await.unwrap(),
            "café au lait"
        );
        for body in [
            &b"text=%FF%FE"[..],
            &b"text=\xff"[..],
            &b"text=ok&x=%C3"[..],
        ] {
            match read(body).await {
                Err(WebError::Rejected(status, message)) => {
                    assert_eq!(status, StatusCode::BAD_REQUEST);
                    assert!(message.contains("UTF-8"), "{message}");
                }
                other => panic!("{body:?} was read: {:?}", other.map_err(|e| e.to_string())),
            }
        }
    }
}
