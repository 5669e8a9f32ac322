//! Query, path and header parameters, read through each value's [`Input`]
//! rule. A bad value is answered here with a 400 problem naming the
//! parameter, in the value's own words: nothing downstream reinterprets
//! poem's messages.

use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaParamIn, MetaSchemaRef, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use super::schema::Input;
use crate::error::ApiError;

/// The values sent for the query parameter `name` (percent-decoded).
fn query_values<'r>(req: &'r Request, name: &str) -> Vec<std::borrow::Cow<'r, str>> {
    let query = req.uri().query().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value)
        .collect()
}

/// An optional query parameter. Sent twice is a 400 (which one would count?).
pub struct QueryArg<T>(pub Option<T>);

impl<T> QueryArg<T> {
    pub fn into_inner(self) -> Option<T> {
        self.0
    }
}

impl<'a, T: Input + 'a> ApiExtractor<'a> for QueryArg<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
    type ParamType = ();
    type ParamRawType = ();

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Query)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(T::schema_ref())
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        param_opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let name = param_opts.name;
        let values = query_values(request, name);
        match values.as_slice() {
            [] => Ok(Self(None)),
            [value] => T::from_text(value)
                .map(|v| Self(Some(v)))
                .map_err(|e| ApiError::field(name, e.into_message()).into()),
            _ => Err(ApiError::field(name, "Send this parameter at most once.").into()),
        }
    }
}

/// A path parameter: a record id or a version number, both 64-bit
/// integers. (Named `Path` because poem-openapi recognises path parameters
/// by that name.)
pub struct Path(pub i64);

impl<'a> ApiExtractor<'a> for Path {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
    const PARAM_IS_REQUIRED: bool = true;
    type ParamType = ();
    type ParamRawType = ();

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Path)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(MetaSchemaRef::Inline(Box::new(<i64 as Input>::schema())))
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        param_opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        request
            .raw_path_param(param_opts.name)
            .and_then(|raw| {
                percent_encoding::percent_decode_str(raw)
                    .decode_utf8()
                    .ok()?
                    .parse::<i64>()
                    .ok()
            })
            .map(Self)
            .ok_or_else(|| {
                ApiError::bad_request("Ids and versions in the URL must be whole numbers.").into()
            })
    }
}

/// An optional request header, read through `T`'s rule. Repeated is a 400.
pub struct HeaderArg<T>(pub Option<T>);

impl<T> HeaderArg<T> {
    pub fn into_inner(self) -> Option<T> {
        self.0
    }
}

impl<'a, T: Input + 'a> ApiExtractor<'a> for HeaderArg<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
    type ParamType = ();
    type ParamRawType = ();

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Header)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(T::schema_ref())
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        param_opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let name = param_opts.name;
        let mut values = request.headers().get_all(name).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return if request.headers().contains_key(name) {
                Err(ApiError::field(name, "Send this header at most once.").into())
            } else {
                Ok(Self(None))
            };
        };
        let text = value.to_str().map_err(|_| {
            ApiError::field(
                name,
                "Only visible ASCII characters are allowed in this header.",
            )
        })?;
        T::from_text(text)
            .map(|v| Self(Some(v)))
            .map_err(|e| ApiError::field(name, e.into_message()).into())
    }
}
