//! The built-in standard tables (DESIGN 5.1) with their Dataverse column types, option sets and
//! default state/status models.

use crate::metadata::{AttributeMeta, AttributeType, EntityMeta, OptionMeta, StateMeta};

/// Money columns: Dataverse's default range for currency columns of the standard tables.
const MONEY_MIN: f64 = 0.0;
const MONEY_MAX: f64 = 100_000_000_000_000.0;
const WHOLE_MAX: f64 = 1_000_000_000.0;

pub(super) fn entities() -> Vec<EntityMeta> {
    vec![
        account(),
        contact(),
        lead(),
        systemuser(),
        team(),
        teammembership(),
        businessunit(),
        task(),
        opportunity(),
    ]
}

fn attribute(name: &str, kind: AttributeType) -> AttributeMeta {
    AttributeMeta::new(name, kind)
}

fn memo(name: &str, max_length: u32) -> AttributeMeta {
    attribute(name, AttributeType::Memo).with_max_length(max_length)
}

fn money(name: &str) -> AttributeMeta {
    attribute(name, AttributeType::Money).with_range(MONEY_MIN, MONEY_MAX)
}

fn whole(name: &str) -> AttributeMeta {
    attribute(name, AttributeType::Integer).with_range(0.0, WHOLE_MAX)
}

fn owner() -> AttributeMeta {
    attribute("ownerid", AttributeType::Owner).with_targets(["systemuser", "team"])
}

/// `createdon`, `modifiedon` (system-maintained) and, for user-owned tables, `owningbusinessunit`.
fn audit_columns(entity: &mut EntityMeta, user_owned: bool) {
    entity.add_attribute(attribute("createdon", AttributeType::DateTime).read_only());
    entity.add_attribute(attribute("modifiedon", AttributeType::DateTime).read_only());
    if user_owned {
        entity.add_attribute(
            AttributeMeta::lookup("owningbusinessunit", ["businessunit"]).read_only(),
        );
    }
}

fn state(value: i32, label: &str, statuses: &[(i32, &str)]) -> StateMeta {
    StateMeta {
        value,
        label: label.to_owned(),
        statuses: statuses
            .iter()
            .map(|&(value, label)| OptionMeta::new(value, label))
            .collect(),
    }
}

fn active_inactive() -> Vec<StateMeta> {
    vec![
        state(0, "Active", &[(1, "Active")]),
        state(1, "Inactive", &[(2, "Inactive")]),
    ]
}

const INDUSTRY_CODES: [(i32, &str); 33] = [
    (1, "Accounting"),
    (2, "Agriculture and Non-petrol Natural Resource Extraction"),
    (3, "Broadcasting Printing and Publishing"),
    (4, "Brokers"),
    (5, "Building Supply Retail"),
    (6, "Business Services"),
    (7, "Consulting"),
    (8, "Consumer Services"),
    (9, "Design, Direction and Creative Management"),
    (10, "Distributors, Dispatchers and Processors"),
    (11, "Doctor's Offices and Clinics"),
    (12, "Durable Manufacturing"),
    (13, "Eating and Drinking Places"),
    (14, "Entertainment Retail"),
    (15, "Equipment Rental and Leasing"),
    (16, "Financial"),
    (17, "Food and Tobacco Processing"),
    (18, "Inbound Capital Intensive Processing"),
    (19, "Inbound Repair and Services"),
    (20, "Insurance"),
    (21, "Legal Services"),
    (22, "Non-Durable Merchandise Retail"),
    (23, "Outbound Consumer Service"),
    (24, "Petrochemical Extraction and Distribution"),
    (25, "Service Retail"),
    (26, "SIG Affiliations"),
    (27, "Social Services"),
    (28, "Special Outbound Trade Contractors"),
    (29, "Specialty Realty"),
    (30, "Transportation"),
    (31, "Utility Creation and Distribution"),
    (32, "Vehicle Retail"),
    (33, "Wholesale"),
];

fn account() -> EntityMeta {
    let mut entity = EntityMeta::new("account", "accounts", "accountid", "name");
    entity.add_attribute(AttributeMeta::string("name", 160));
    entity.add_attribute(AttributeMeta::string("accountnumber", 20));
    entity.add_attribute(whole("numberofemployees"));
    entity.add_attribute(money("revenue"));
    entity.add_attribute(
        attribute("industrycode", AttributeType::Picklist).with_options(INDUSTRY_CODES),
    );
    entity.set_states(active_inactive());
    entity.add_attribute(attribute("creditonhold", AttributeType::Boolean));
    audit_columns(&mut entity, true);
    entity.add_attribute(AttributeMeta::string("address1_city", 80));
    entity.add_attribute(AttributeMeta::string("address1_stateorprovince", 50));
    entity.add_attribute(memo("description", 2000));
    entity.add_attribute(AttributeMeta::lookup("parentaccountid", ["account"]).hierarchical());
    entity.add_attribute(AttributeMeta::lookup("primarycontactid", ["contact"]));
    entity.add_attribute(owner());
    entity
}

fn contact() -> EntityMeta {
    let mut entity = EntityMeta::new("contact", "contacts", "contactid", "fullname");
    entity.add_attribute(AttributeMeta::string("firstname", 50));
    entity.add_attribute(AttributeMeta::string("lastname", 50));
    entity.add_attribute(AttributeMeta::string("fullname", 160).read_only());
    entity.add_attribute(AttributeMeta::string("emailaddress1", 100));
    entity.add_attribute(AttributeMeta::string("jobtitle", 100));
    entity.add_attribute(money("annualincome"));
    entity.add_attribute(whole("numberofchildren"));
    entity.add_attribute(
        attribute("parentcustomerid", AttributeType::Customer).with_targets(["account", "contact"]),
    );
    entity.set_states(active_inactive());
    entity.add_attribute(
        attribute("gendercode", AttributeType::Picklist).with_options([(1, "Male"), (2, "Female")]),
    );
    entity.add_attribute(attribute("donotemail", AttributeType::Boolean));
    audit_columns(&mut entity, true);
    entity.add_attribute(owner());
    entity
}

fn lead() -> EntityMeta {
    let mut entity = EntityMeta::new("lead", "leads", "leadid", "fullname");
    entity.add_attribute(AttributeMeta::string("subject", 300));
    entity.add_attribute(AttributeMeta::string("firstname", 50));
    entity.add_attribute(AttributeMeta::string("lastname", 50));
    entity.add_attribute(AttributeMeta::string("fullname", 160).read_only());
    entity.add_attribute(AttributeMeta::string("companyname", 100));
    entity.add_attribute(money("estimatedvalue"));
    entity.add_attribute(money("budgetamount"));
    entity.add_attribute(
        attribute("leadqualitycode", AttributeType::Picklist).with_options([
            (1, "Hot"),
            (2, "Warm"),
            (3, "Cold"),
        ]),
    );
    entity.set_states(vec![
        state(0, "Open", &[(1, "New"), (2, "Contacted")]),
        state(1, "Qualified", &[(3, "Qualified")]),
        state(
            2,
            "Disqualified",
            &[
                (4, "Lost"),
                (5, "Cannot Contact"),
                (6, "No Longer Interested"),
                (7, "Canceled"),
            ],
        ),
    ]);
    entity.add_attribute(AttributeMeta::string("address1_stateorprovince", 50));
    entity.add_attribute(memo("description", 2000));
    audit_columns(&mut entity, true);
    entity.add_attribute(AttributeMeta::lookup("parentaccountid", ["account"]));
    entity.add_attribute(owner());
    entity
}

fn systemuser() -> EntityMeta {
    let mut entity = EntityMeta::new("systemuser", "systemusers", "systemuserid", "fullname");
    entity.add_attribute(AttributeMeta::string("firstname", 64));
    entity.add_attribute(AttributeMeta::string("lastname", 64));
    entity.add_attribute(AttributeMeta::string("fullname", 200).read_only());
    entity.add_attribute(AttributeMeta::string("internalemailaddress", 100));
    entity.add_attribute(AttributeMeta::string("title", 128));
    entity.add_attribute(attribute("isdisabled", AttributeType::Boolean));
    entity.add_attribute(AttributeMeta::lookup("businessunitid", ["businessunit"]));
    audit_columns(&mut entity, false);
    entity
}

fn team() -> EntityMeta {
    let mut entity = EntityMeta::new("team", "teams", "teamid", "name");
    entity.add_attribute(AttributeMeta::string("name", 160));
    entity.add_attribute(AttributeMeta::lookup("businessunitid", ["businessunit"]));
    audit_columns(&mut entity, false);
    entity
}

/// Dataverse's intersect table of team members: `eq-userteams` and `eq-useroruserteams`
/// find the caller's teams here.
fn teammembership() -> EntityMeta {
    let mut entity = EntityMeta::new(
        "teammembership",
        "teammemberships",
        "teammembershipid",
        "teammembershipid",
    );
    entity.add_attribute(AttributeMeta::lookup("systemuserid", ["systemuser"]));
    entity.add_attribute(AttributeMeta::lookup("teamid", ["team"]));
    entity
}

fn businessunit() -> EntityMeta {
    let mut entity = EntityMeta::new("businessunit", "businessunits", "businessunitid", "name");
    entity.add_attribute(AttributeMeta::string("name", 160));
    entity.add_attribute(AttributeMeta::lookup(
        "parentbusinessunitid",
        ["businessunit"],
    ));
    audit_columns(&mut entity, false);
    entity
}

fn task() -> EntityMeta {
    let mut entity = EntityMeta::new("task", "tasks", "activityid", "subject");
    entity.add_attribute(AttributeMeta::string("subject", 200));
    entity.add_attribute(memo("description", 2000));
    entity.add_attribute(AttributeMeta::lookup(
        "regardingobjectid",
        ["account", "contact", "lead", "opportunity"],
    ));
    entity.add_attribute(attribute("scheduledend", AttributeType::DateTime));
    entity.set_states(vec![
        state(
            0,
            "Open",
            &[
                (2, "Not Started"),
                (3, "In Progress"),
                (4, "Waiting on someone else"),
                (7, "Deferred"),
            ],
        ),
        state(1, "Completed", &[(5, "Completed")]),
        state(2, "Canceled", &[(6, "Canceled")]),
    ]);
    entity.add_attribute(owner());
    audit_columns(&mut entity, true);
    entity
}

fn opportunity() -> EntityMeta {
    let mut entity = EntityMeta::new("opportunity", "opportunities", "opportunityid", "name");
    entity.add_attribute(AttributeMeta::string("name", 300));
    entity.add_attribute(money("estimatedvalue"));
    entity.add_attribute(money("actualvalue"));
    entity.add_attribute(attribute("estimatedclosedate", AttributeType::DateTime));
    entity.add_attribute(
        attribute("closeprobability", AttributeType::Integer).with_range(0.0, 100.0),
    );
    entity.add_attribute(AttributeMeta::lookup("parentaccountid", ["account"]));
    entity.add_attribute(AttributeMeta::lookup("parentcontactid", ["contact"]));
    entity.add_attribute(
        attribute("customerid", AttributeType::Customer).with_targets(["account", "contact"]),
    );
    entity.set_states(vec![
        state(0, "Open", &[(1, "In Progress"), (2, "On Hold")]),
        state(1, "Won", &[(3, "Won")]),
        state(2, "Lost", &[(4, "Canceled"), (5, "Out-Sold")]),
    ]);
    entity.add_attribute(owner());
    audit_columns(&mut entity, true);
    entity.add_attribute(memo("description", 2000));
    entity
}
