//! A card's Markdown as HTML a browser may show: rendered by pulldown-cmark, then cleaned by
//! ammonia's allow-list (no `<script>`, no event handlers, no `javascript:` or `data:` URLs,
//! links marked `noopener noreferrer nofollow`). Raw HTML in a card is allowed through the
//! same cleaning, as the Hub allows it.

use std::borrow::Cow;

use pulldown_cmark::{Options, Parser, html};

/// `markdown` as safe HTML; relative links and images point under `files_base` (the
/// repository's `resolve/main/`), as on the Hub.
pub(crate) fn render(markdown: &str, files_base: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS | Options::ENABLE_FOOTNOTES;
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(markdown, options));
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_relative(ammonia::UrlRelative::Custom(Box::new(UnderFiles(files_base.to_string()))))
        .clean(&unsafe_html)
        .to_string()
}

/// Relative URLs of a card lead into the repository's files; rooted ones and fragments stay.
struct UnderFiles(String);

impl<'a> ammonia::UrlRelativeEvaluate<'a> for UnderFiles {
    fn evaluate<'url>(&self, url: &'url str) -> Option<Cow<'url, str>> {
        if url.starts_with('/') || url.starts_with('#') || url.starts_with('?') {
            Some(Cow::Borrowed(url))
        } else {
            Some(Cow::Owned(format!("{}{}", self.0, url.trim_start_matches("./"))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn scripts_handlers_and_javascript_links_of_a_card_are_inert() {
        let html = render(
            "# Title\n\n<script>alert(1)</script>\n\n[click](javascript:alert(2)) <img src=x onerror=\"alert(3)\">\n\n\
             <a href=\"data:text/html,<script>alert(4)</script>\">d</a> <iframe src=\"https://example.org\"></iframe>\n",
            "/alice/cnn/resolve/main/",
        );
        for bad in ["<script", "javascript:", "onerror", "alert(1)", "data:text/html", "<iframe"] {
            assert!(!html.contains(bad), "{bad} survived: {html}");
        }
        assert!(html.contains("<h1>Title</h1>"), "{html}");
    }

    #[test]
    fn relative_links_and_images_point_at_the_repository_files() {
        let html =
            render("![plot](./plot.png) [config](config.json) [home](/models) [web](https://example.org)\n", "/alice/cnn/resolve/main/");
        assert!(html.contains("src=\"/alice/cnn/resolve/main/plot.png\""), "{html}");
        assert!(html.contains("href=\"/alice/cnn/resolve/main/config.json\""), "{html}");
        assert!(html.contains("href=\"/models\""), "{html}");
        assert!(html.contains("href=\"https://example.org\" rel=\"noopener noreferrer nofollow\""), "{html}");
    }
}
