//! The chrome around every signed-in page: its title, the nav bar (only the pages the role
//! may open), who is signed in, the logout form, and the operator's account picker.

use mailtrail_domain::Role;

use crate::session::Viewer;

/// Which nav entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Leads,
    EmailReport,
    Batches,
    Suppressions,
    Settings,
    Admin,
}

pub(crate) struct NavLink {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

pub(crate) struct AccountOption {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

/// What `base.html` needs.
pub(crate) struct Chrome {
    pub title: String,
    pub nav: Vec<NavLink>,
    pub email: String,
    pub role: &'static str,
    pub csrf: String,
    /// The operator's account picker; empty for everyone else.
    pub accounts: Vec<AccountOption>,
    /// Where the picker sends its choice: the current page.
    pub path: String,
}

impl Chrome {
    pub(crate) fn new(
        viewer: &Viewer,
        title: impl Into<String>,
        section: Section,
        path: &str,
    ) -> Self {
        let entries = [
            (Section::Overview, "/", "Overview", Role::User),
            (Section::Leads, "/leads", "Leads", Role::User),
            (
                Section::EmailReport,
                "/reports/emails",
                "Email report",
                Role::User,
            ),
            (Section::Batches, "/reports/batches", "Batches", Role::User),
            (
                Section::Suppressions,
                "/suppressions",
                "Suppressions",
                Role::User,
            ),
            (Section::Settings, "/settings", "Settings", Role::User),
            (Section::Admin, "/admin/users", "Admin", Role::Admin),
        ];
        Chrome {
            title: title.into(),
            nav: entries
                .into_iter()
                .filter(|(_, _, _, needs)| viewer.role >= *needs)
                .map(|(s, href, label, _)| NavLink {
                    href,
                    label,
                    current: s == section,
                })
                .collect(),
            email: viewer.email.clone(),
            role: viewer.role.as_str(),
            csrf: viewer.csrf.clone(),
            accounts: viewer
                .accounts
                .iter()
                .map(|a| AccountOption {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    selected: a.id == viewer.account_id,
                })
                .collect(),
            path: path.to_owned(),
        }
    }
}
