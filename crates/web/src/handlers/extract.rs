//! Extractors whose failures are pages: an unreadable form is a 400 page, a bad id a 404.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::WebError;

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
