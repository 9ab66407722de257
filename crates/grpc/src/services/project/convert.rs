//! Proto ⇄ domain for projects.

use paycore_domain::project::ProjectCommand;
use paycore_domain::{Command, Environment, Violations};

use crate::convert::*;
use crate::pb;
use paycore_domain::aggregate::Project;

pub fn update_project(request: &pb::UpdateProjectRequest, v: &mut Violations) -> Option<Command> {
    let mask = Mask::parse(request.update_mask.as_ref(), &["meta"], v);
    let meta = meta(&request.meta, "meta", v);
    mask?;
    Some(ProjectCommand::UpdateProject { meta: meta? }.into())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::tests::mask;

    #[test]
    fn update_project_reads_the_masked_meta() {
        let request = pb::UpdateProjectRequest {
            update_mask: mask(&["meta"]),
            meta: [("a".to_owned(), "b".to_owned())].into(),
        };
        let mut v = Violations::new();
        let Some(Command::Project(ProjectCommand::UpdateProject { meta })) = update_project(&request, &mut v)
        else {
            panic!("expected UpdateProject");
        };
        assert_eq!(meta.get("a"), Some("b"));
    }
}
