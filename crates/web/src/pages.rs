//! The pages, one struct per template (`templates/`): askama checks each template against its
//! struct at compile time and escapes every value it prints.

use askama::Template;

use crate::assets;

/// What every page's frame shows: the title, the home button, who is signed in.
pub struct Chrome {
    pub title: String,
    pub me: Option<MeLink>,
    pub csrf: String,
    pub css: &'static str,
    pub script: Option<&'static str>,
    pub dialogs: bool,
}

impl Chrome {
    pub fn new(title: impl Into<String>, me: Option<MeLink>, csrf: &str, dialogs: bool) -> Self {
        Self {
            title: title.into(),
            me,
            csrf: csrf.to_owned(),
            css: assets::stylesheet(),
            script: None,
            dialogs,
        }
    }

    /// For pages rendered without knowing the visitor (error pages for unknown paths).
    pub fn anonymous(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            me: None,
            csrf: String::new(),
            css: assets::stylesheet(),
            script: None,
            dialogs: false,
        }
    }

    pub fn with_live_script(mut self) -> Self {
        self.script = Some(assets::live_script());
        self
    }
}

/// The signed-in user in the page header.
pub struct MeLink {
    pub id: i64,
    pub name: String,
}

/// A user as pages list them.
pub struct Person {
    pub id: i64,
    pub name: String,
    pub city: Option<String>,
}

/// A post with its author's name.
pub struct PostView {
    pub id: i64,
    pub author_id: i64,
    pub author: String,
    pub text: String,
}

/// A field's value as typed and its error, for forms shown again after a mistake.
#[derive(Default)]
pub struct Field {
    pub value: String,
    pub error: Option<String>,
}

impl Field {
    pub fn of(value: &str) -> Self {
        Self {
            value: value.to_owned(),
            error: None,
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub chrome: Chrome,
    pub status: u16,
    pub title: &'a str,
    pub detail: &'a str,
    pub advice: &'a str,
    /// Where the page retries (503 only).
    pub retry: Option<String>,
    pub request_id: String,
}

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignUpPage {
    pub chrome: Chrome,
    pub first_name: Field,
    pub second_name: Field,
    pub birthdate: Field,
    pub city: Field,
    pub biography: Field,
    pub password: Field,
    pub form_error: Option<String>,
}

#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInPage {
    pub chrome: Chrome,
    pub id: Field,
    pub password: Field,
    pub next: String,
    pub form_error: Option<String>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub chrome: Chrome,
    pub me: Profile,
    pub draft: Field,
    pub feed: Vec<PostView>,
    pub page: usize,
    pub newer: Option<usize>,
    pub older: Option<usize>,
    /// Newest post id shown (or an id for now): where the live feed resumes (`since`).
    pub live_since: String,
    /// Id units the live feed resumes before `live_since`.
    pub live_look_back: String,
    pub truncated: bool,
    /// The post just published, to link to.
    pub posted: Option<i64>,
}

/// A profile as the pages show it.
pub struct Profile {
    pub id: i64,
    pub name: String,
    pub birthdate: Option<String>,
    pub city: Option<String>,
    pub biography: Option<String>,
}

#[derive(Template)]
#[template(path = "user.html")]
pub struct UserPage {
    pub chrome: Chrome,
    pub user: Profile,
    pub is_me: bool,
    /// `None` when nobody is signed in.
    pub is_friend: Option<bool>,
    pub posts: Vec<PostView>,
    pub older: Option<i64>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    pub chrome: Chrome,
    pub first_name: Field,
    pub last_name: Field,
    pub searched: bool,
    pub results: Vec<Person>,
    pub total: usize,
    pub first_shown: usize,
    pub page: usize,
    pub newer: Option<usize>,
    pub older: Option<usize>,
    pub capped: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "post.html")]
pub struct PostPage {
    pub chrome: Chrome,
    pub post: PostView,
    pub mine: bool,
    pub draft: Field,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "messages.html")]
pub struct MessagesPage {
    pub chrome: Chrome,
    pub available: bool,
    pub dialogs: Vec<DialogLine>,
}

pub struct DialogLine {
    pub with: Person,
    pub last_from_me: bool,
    pub last_text: String,
}

#[derive(Template)]
#[template(path = "dialog.html")]
pub struct DialogPage {
    pub chrome: Chrome,
    pub with: Person,
    pub messages: Vec<MessageView>,
    pub older: Option<i64>,
    pub draft: Field,
}

pub struct MessageView {
    pub mine: bool,
    pub text: String,
}
