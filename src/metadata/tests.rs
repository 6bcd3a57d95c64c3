//! Unit tests of the built-in catalogue and the metadata helpers.

use crate::metadata::{AttributeMeta, AttributeType, Catalogue, EntityMeta};

#[test]
fn builtin_has_the_standard_tables() {
    let catalogue = Catalogue::builtin();
    let names: Vec<&str> = catalogue.entity_names().collect();
    assert_eq!(
        names,
        [
            "account",
            "businessunit",
            "contact",
            "lead",
            "opportunity",
            "systemuser",
            "task",
            "team",
            "teammembership"
        ]
    );
}

#[test]
fn design_columns_exist_with_their_types() {
    use AttributeType as T;
    let catalogue = Catalogue::builtin();
    let expected: &[(&str, &[&str])] = &[
        (
            "account",
            &[
                "accountid",
                "name",
                "accountnumber",
                "numberofemployees",
                "revenue",
                "industrycode",
                "statecode",
                "statuscode",
                "creditonhold",
                "createdon",
                "modifiedon",
                "address1_city",
                "address1_stateorprovince",
                "description",
                "parentaccountid",
                "primarycontactid",
                "ownerid",
            ],
        ),
        (
            "contact",
            &[
                "contactid",
                "firstname",
                "lastname",
                "fullname",
                "emailaddress1",
                "jobtitle",
                "annualincome",
                "numberofchildren",
                "parentcustomerid",
                "statecode",
                "statuscode",
                "gendercode",
                "donotemail",
                "createdon",
                "modifiedon",
                "ownerid",
            ],
        ),
        (
            "systemuser",
            &[
                "systemuserid",
                "firstname",
                "lastname",
                "fullname",
                "internalemailaddress",
                "title",
                "isdisabled",
                "businessunitid",
                "createdon",
            ],
        ),
        (
            "lead",
            &[
                "leadid",
                "subject",
                "firstname",
                "lastname",
                "fullname",
                "companyname",
                "estimatedvalue",
                "budgetamount",
                "leadqualitycode",
                "statecode",
                "statuscode",
                "address1_stateorprovince",
                "description",
                "createdon",
                "modifiedon",
                "parentaccountid",
                "ownerid",
            ],
        ),
        (
            "task",
            &[
                "activityid",
                "subject",
                "description",
                "regardingobjectid",
                "scheduledend",
                "statecode",
                "statuscode",
                "ownerid",
            ],
        ),
        (
            "businessunit",
            &["businessunitid", "name", "parentbusinessunitid"],
        ),
        ("team", &["teamid", "name", "businessunitid"]),
        (
            "opportunity",
            &[
                "opportunityid",
                "name",
                "estimatedvalue",
                "actualvalue",
                "estimatedclosedate",
                "closeprobability",
                "parentaccountid",
                "parentcontactid",
                "customerid",
                "statecode",
                "statuscode",
                "ownerid",
                "createdon",
                "modifiedon",
                "description",
            ],
        ),
    ];
    for (entity, columns) in expected {
        let meta = catalogue.entity(entity).expect(entity);
        for column in *columns {
            assert!(meta.attribute(column).is_some(), "{entity}.{column}");
        }
    }
    let kinds: &[(&str, &str, AttributeType)] = &[
        ("account", "industrycode", T::Picklist),
        ("lead", "leadqualitycode", T::Picklist),
        ("contact", "gendercode", T::Picklist),
        ("account", "revenue", T::Money),
        ("contact", "annualincome", T::Money),
        ("lead", "estimatedvalue", T::Money),
        ("lead", "budgetamount", T::Money),
        ("account", "creditonhold", T::Boolean),
        ("contact", "donotemail", T::Boolean),
        ("systemuser", "isdisabled", T::Boolean),
        ("account", "numberofemployees", T::Integer),
        ("contact", "numberofchildren", T::Integer),
        ("task", "scheduledend", T::DateTime),
        ("account", "createdon", T::DateTime),
        ("account", "description", T::Memo),
        ("account", "ownerid", T::Owner),
        ("contact", "parentcustomerid", T::Customer),
        ("account", "statecode", T::State),
        ("account", "statuscode", T::Status),
        ("account", "accountid", T::Uniqueidentifier),
        ("task", "activityid", T::Uniqueidentifier),
    ];
    for (entity, column, kind) in kinds {
        let attribute = catalogue.entity(entity).unwrap().attribute(column).unwrap();
        assert_eq!(attribute.kind, *kind, "{entity}.{column}");
    }
}

#[test]
fn keys_names_and_sets() {
    let catalogue = Catalogue::builtin();
    let task = catalogue.entity("task").unwrap();
    assert_eq!(
        (
            task.primary_id.as_str(),
            task.primary_name.as_str(),
            task.entity_set_name.as_str()
        ),
        ("activityid", "subject", "tasks")
    );
    assert_eq!(
        catalogue
            .entity_by_set_name("opportunities")
            .unwrap()
            .logical_name,
        "opportunity"
    );
    assert_eq!(
        catalogue.entity("contact").unwrap().primary_name,
        "fullname"
    );
}

#[test]
fn lookup_targets() {
    let catalogue = Catalogue::builtin();
    let targets = |entity: &str, column: &str| {
        catalogue
            .entity(entity)
            .unwrap()
            .attribute(column)
            .unwrap()
            .targets
            .clone()
    };
    assert_eq!(
        targets("contact", "parentcustomerid"),
        ["account", "contact"]
    );
    assert_eq!(
        targets("task", "regardingobjectid"),
        ["account", "contact", "lead", "opportunity"]
    );
    assert_eq!(targets("account", "ownerid"), ["systemuser", "team"]);
    assert_eq!(targets("systemuser", "businessunitid"), ["businessunit"]);
    assert_eq!(targets("team", "businessunitid"), ["businessunit"]);
}

#[test]
fn writability() {
    let catalogue = Catalogue::builtin();
    let account = catalogue.entity("account").unwrap();
    for column in [
        "accountid",
        "createdon",
        "modifiedon",
        "statecode",
        "statuscode",
    ] {
        assert!(
            !account.attribute(column).unwrap().valid_for_update,
            "{column}"
        );
    }
    assert!(account.attribute("accountid").unwrap().valid_for_create);
    assert!(account.attribute("name").unwrap().valid_for_update);
    let fullname = catalogue
        .entity("contact")
        .unwrap()
        .attribute("fullname")
        .unwrap();
    assert!(!fullname.valid_for_create && !fullname.valid_for_update);
}

#[test]
fn hierarchy_is_account_parentaccountid_only() {
    let catalogue = Catalogue::builtin();
    let hierarchical: Vec<String> = catalogue
        .entities()
        .filter_map(|entity| {
            entity
                .hierarchy_attribute()
                .map(|attribute| format!("{}.{}", entity.logical_name, attribute.logical_name))
        })
        .collect();
    assert_eq!(hierarchical, ["account.parentaccountid"]);
}

#[test]
fn state_and_status_model() {
    let catalogue = Catalogue::builtin();
    let cases: &[(&str, i32, i32, bool)] = &[
        ("account", 0, 1, true),
        ("account", 1, 2, true),
        ("account", 1, 1, false),
        ("account", 2, 1, false),
        ("lead", 2, 7, true),
        ("lead", 1, 3, true),
        ("lead", 0, 3, false),
        ("task", 0, 7, true),
        ("task", 1, 5, true),
        ("task", 2, 5, false),
        ("opportunity", 2, 5, true),
        ("opportunity", 1, 4, false),
    ];
    for &(entity, state, status, ok) in cases {
        let result = catalogue
            .entity(entity)
            .unwrap()
            .valid_status(state, status);
        assert_eq!(result.is_ok(), ok, "{entity} {state}/{status}: {result:?}");
    }
    let error = catalogue
        .entity("lead")
        .unwrap()
        .valid_status(0, 3)
        .unwrap_err();
    assert!(error.contains("1 (New), 2 (Contacted)"), "{error}");
    assert!(
        catalogue
            .entity("team")
            .unwrap()
            .valid_status(0, 1)
            .is_err()
    );
    let statuscode = catalogue
        .entity("task")
        .unwrap()
        .attribute("statuscode")
        .unwrap();
    assert_eq!(statuscode.options.len(), 6);
    assert_eq!(
        catalogue.entity("team").unwrap().attribute("statecode"),
        None
    );
}

#[test]
fn option_sets_have_real_values() {
    let catalogue = Catalogue::builtin();
    let lead = catalogue.entity("lead").unwrap();
    assert_eq!(
        lead.attribute("leadqualitycode")
            .unwrap()
            .describe_options(),
        "1 (Hot), 2 (Warm), 3 (Cold)"
    );
    let industry = catalogue
        .entity("account")
        .unwrap()
        .attribute("industrycode")
        .unwrap();
    assert_eq!(industry.option(7).unwrap().label, "Consulting");
    assert_eq!(industry.options.len(), 33);
}

#[test]
fn custom_tables_and_columns() {
    let mut catalogue = Catalogue::builtin();
    let mut project = EntityMeta::new("new_project", "new_projects", "new_projectid", "new_name");
    project.add_attribute(AttributeMeta::string("new_name", 100));
    project.add_attribute(AttributeMeta::lookup("new_accountid", ["account"]));
    assert!(catalogue.add_entity(project).is_none());
    catalogue
        .entity_mut("account")
        .unwrap()
        .add_attribute(AttributeMeta::new("new_score", AttributeType::Decimal));
    let account = catalogue.entity("account").unwrap();
    assert_eq!(
        account.attribute("new_score").unwrap().kind,
        AttributeType::Decimal
    );
    assert_eq!(account.attribute_names().last(), Some("new_score"));
    let project = catalogue.entity("new_project").unwrap();
    assert_eq!(
        project.attribute("new_projectid").unwrap().kind,
        AttributeType::Uniqueidentifier
    );
}

#[test]
fn type_helpers() {
    assert!(AttributeType::Money.is_numeric());
    assert!(!AttributeType::Picklist.is_numeric());
    assert!(AttributeType::Memo.is_string());
    assert!(AttributeType::DateTime.is_datetime());
    assert!(AttributeType::Customer.is_guid() && AttributeType::Customer.is_lookup());
    assert!(AttributeType::Status.is_option_set());
}

#[test]
fn serde_round_trip_and_custom_tables_from_json() {
    let catalogue = Catalogue::builtin();
    let json = serde_json::to_string(&catalogue).unwrap();
    let back: Catalogue = serde_json::from_str(&json).unwrap();
    assert_eq!(back, catalogue);

    let custom: Catalogue = serde_json::from_str(
        r#"[{"logical_name": "new_project", "entity_set_name": "new_projects",
             "primary_id": "new_projectid", "primary_name": "new_name",
             "attributes": [{"logical_name": "new_name", "kind": "String", "max_length": 100}],
             "states": [{"value": 0, "label": "Active", "statuses": [{"value": 1, "label": "Active"}]}]}]"#,
    )
    .unwrap();
    let project = custom.entity("new_project").unwrap();
    assert_eq!(project.attributes[0].logical_name, "new_projectid");
    assert!(project.attribute("new_name").unwrap().valid_for_update);
    assert_eq!(project.attribute("statuscode").unwrap().options.len(), 1);
    assert!(project.valid_status(0, 1).is_ok());
    let mut merged = Catalogue::builtin();
    merged.extend(custom);
    assert!(merged.entity("new_project").is_some() && merged.entity("account").is_some());
}
