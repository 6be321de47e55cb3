//! Signing up, in and out.

use agora_platform::peer::ClientAddress;
use agora_social::SocialError;
use agora_social::domain::{NewUser, Registration};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::{
    CsrfOnly, CsrfProtected, FormData, Params, ViewerForm, chrome, render, see_other, sentence,
};
use crate::Web;
use crate::error::WebError;
use crate::pages::*;
use crate::session::{Viewer, cleared_session_cookie, local_target, session_cookie};

#[derive(Deserialize, Default)]
pub(super) struct SignUpForm {
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

impl CsrfProtected for SignUpForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub(super) fn signup_page(web: &Web, viewer: &Viewer, form: &SignUpForm) -> SignUpPage {
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

pub(super) async fn signup_form(
    State(web): State<Web>,
    viewer: Viewer,
) -> Result<Response, WebError> {
    if viewer.me.is_some() {
        return Ok(see_other("/"));
    }
    render(
        StatusCode::OK,
        &viewer,
        signup_page(&web, &viewer, &SignUpForm::default()),
    )
}

pub(super) fn optional(value: &str) -> Option<String> {
    (!value.trim().is_empty()).then(|| value.to_owned())
}

pub(super) async fn signup(
    State(web): State<Web>,
    ClientAddress(client): ClientAddress,
    ViewerForm(viewer, form): ViewerForm<SignUpForm>,
) -> Result<Response, WebError> {
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
pub(super) struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

impl CsrfProtected for SignInForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub(super) fn signin_page(web: &Web, viewer: &Viewer, id: &str, next: &str) -> SignInPage {
    SignInPage {
        chrome: chrome(web, "Sign in", viewer),
        id: Field::of(id),
        password: Field::default(),
        next: local_target(Some(next)).to_owned(),
        form_error: None,
        notice: None,
    }
}

pub(super) async fn signin_form(
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

pub(super) async fn signin(
    State(web): State<Web>,
    ClientAddress(client): ClientAddress,
    ViewerForm(viewer, form): ViewerForm<SignInForm>,
) -> Result<Response, WebError> {
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

pub(super) async fn signout(
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
