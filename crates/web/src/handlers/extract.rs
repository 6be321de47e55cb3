//! Extractors whose failures are pages: an unreadable form is a 400 page, a bad id a 404, a
//! form without this viewer's CSRF token a 403.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::Web;
use crate::error::WebError;
use crate::session::{Me, SignedIn, Viewer};

/// A form body; one that cannot be read is a 400 page.
pub struct FormData<T>(pub T);

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

/// A form that changes something: it carries the CSRF token of the page it was sent from.
pub trait CsrfProtected {
    fn csrf(&self) -> &str;
}

/// A form sent by this viewer from one of this site's pages. The viewer is read first, the
/// body next; a token that does not match is a 403 page.
pub struct ViewerForm<T>(pub Viewer, pub T);

impl<T: CsrfProtected + DeserializeOwned + Send> FromRequest<Web> for ViewerForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, web: &Web) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, web)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = checked_form(&viewer, Request::from_parts(parts, body), web).await?;
        Ok(Self(viewer, form))
    }
}

/// [`ViewerForm`] from a signed-in viewer; a signed-out one is sent to sign in.
pub struct SignedInForm<T>(pub Viewer, pub Me, pub T);

impl<T: CsrfProtected + DeserializeOwned + Send> FromRequest<Web> for SignedInForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, web: &Web) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let SignedIn(viewer, me) = SignedIn::from_request_parts(&mut parts, web).await?;
        let form = checked_form(&viewer, Request::from_parts(parts, body), web).await?;
        Ok(Self(viewer, me, form))
    }
}

async fn checked_form<T: CsrfProtected + DeserializeOwned + Send>(
    viewer: &Viewer,
    request: Request,
    web: &Web,
) -> Result<T, Response> {
    let FormData(form) = FormData::<T>::from_request(request, web)
        .await
        .map_err(IntoResponse::into_response)?;
    viewer
        .check_csrf(form.csrf())
        .map_err(IntoResponse::into_response)?;
    Ok(form)
}

/// An id in the path; anything else is a page that does not exist.
pub struct IdPath(pub i64);

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

#[cfg(test)]
mod tests {
    use serde::Deserialize;

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
