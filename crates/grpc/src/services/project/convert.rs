//! Proto ⇄ domain for projects.

use paycore_domain::{Command, Environment, Violations};

use crate::convert::*;
use crate::pb;
use paycore_domain::aggregate::Project;

pub fn update_project(request: &pb::UpdateProjectRequest, v: &mut Violations) -> Option<Command> {
    let mask = Mask::parse(request.update_mask.as_ref(), &["meta"], v);
    let meta = meta(&request.meta, "meta", v);
    mask?;
    Some(Command::UpdateProject { meta: meta? })
}

pub fn environment_pb(environment: Environment) -> pb::Environment {
    match environment {
        Environment::Sandbox => pb::Environment::Sandbox,
        Environment::Live => pb::Environment::Live,
    }
}

pub fn project_pb(project: &Project) -> pb::Project {
    pb::Project {
        id: project.id.to_string(),
        created_at: Some(timestamp(project.created_at)),
        meta: meta_pb(&project.meta),
        name: project.name.clone(),
        environment: environment_pb(project.environment).into(),
    }
}
