//! Mail as a user sends it: to someone here, or through a related project's URL when the target
//! names one (`NAME:AGENT`, `#NAME:ID`, a project's name), and replies that go back where the
//! message came from. Above messages (what is here) and projects (what goes elsewhere).

use crate::error::{Error, Result};
use crate::model::id;
use crate::model::message::{MAX_SUBJECT, Message, NOTICE_SENDER, clip};
use crate::model::{message::Importance, name};
use crate::ops::context::Coord;
use crate::ops::messages::{Messages, Outgoing, Replied};
use crate::ops::projects::Projects;
use crate::store::Actor;

/// Sends a message: into a related project when the target names one, else here.
pub fn send(coord: &Coord, out: Outgoing) -> Result<Message> {
    let projects = Projects::new(coord);
    let target = out.target.trim().to_string();
    if target.starts_with('#')
        && let Some((project, task)) = id::split_foreign(&target)
    {
        return projects.send_to_task(project, task, out);
    }
    if let Some((project, rest)) = target.split_once(':') {
        return projects.send(project, rest, out, None);
    }
    match Messages::new(coord).send_here(out.clone()) {
        // A name that is no one here may be a related project (all its agents).
        Err(unknown @ Error::Invalid { what: "target", .. }) => {
            if name::validate("agent name", &target).is_ok() && projects.get(&target).is_ok() {
                return projects.send(&target, "", out, None);
            }
            Err(unknown)
        }
        other => other,
    }
}

/// Replies to a message: to its sender, in its thread, about its task. A notice from
/// git-coord has no reader: the reply goes on the thread of the task it is about, here or in
/// the other project.
pub fn reply(
    coord: &Coord,
    input: &str,
    body: String,
    attachments: Vec<(String, Vec<u8>)>,
) -> Result<Replied> {
    let messages = Messages::new(coord);
    let actor = coord.actor()?;
    let prefix = id::parse_prefix(input)?;
    let original = messages.load(&messages.store().snapshot()?, &prefix)?;
    let projects = Projects::new(coord);
    let foreign = original
        .from_project
        .as_ref()
        .filter(|p| **p != projects.own_id());
    let subject = if original.subject.starts_with("Re: ") {
        original.subject.clone()
    } else {
        clip(&format!("Re: {}", original.subject), MAX_SUBJECT)
    };
    let out = Outgoing {
        target: original.from.clone(),
        subject: Some(subject),
        thread: None,
        task: original.task.clone(),
        importance: original.importance.min(Importance::Normal),
        body,
        attachments,
    };
    let here = |message| Replied {
        message,
        project: None,
    };
    if original.from == NOTICE_SENDER && original.from_project.is_none() {
        return reply_to_notice(coord, &messages, &actor, &original, out);
    }
    if let Some(project_id) = foreign {
        // About a task of ours: the answer goes on the task's thread, where its sender's
        // project follows it; no address of theirs is needed.
        if let Some(task) = original
            .task
            .as_deref()
            .filter(|_| projects.by_id(project_id).ok().flatten().is_none())
            && crate::ops::tasks::Tasks::new(coord)
                .resolve_now(task)
                .is_ok()
        {
            let out = Outgoing {
                target: format!("#{task}"),
                thread: Some(original.thread.clone()),
                ..out
            };
            let sent = messages.send_as(&actor, out, None)?;
            messages.mark(&original.id, false, "read")?;
            return Ok(here(sent));
        }
        let project = projects.by_id(project_id)?.ok_or_else(|| {
            Error::invalid(
                "reply",
                &original.id,
                format!("it came from project {project_id}, which is not recorded here: `git coord project add NAME URL` first"),
            )
        })?;
        let sent = projects.send(&project.name, &original.from, out, Some(&original))?;
        messages.mark(&original.id, false, "read")?;
        return Ok(Replied {
            message: sent,
            project: Some(project.name),
        });
    }
    messages.send_as(&actor, out, Some(&original)).map(here)
}

/// A reply to a notice: on the thread of the task it is about, through the other project's
/// URL when the task is theirs (as `send --to '#NAME:ID'` would).
fn reply_to_notice(
    coord: &Coord,
    messages: &Messages,
    actor: &Actor,
    notice: &Message,
    out: Outgoing,
) -> Result<Replied> {
    let on_thread = |target: String| Outgoing {
        target,
        thread: None,
        task: None,
        ..out.clone()
    };
    let replied = if let Some(about) = &notice.about {
        let projects = Projects::new(coord);
        let project = projects.by_id(&about.project)?.ok_or_else(|| {
            Error::invalid(
                "reply",
                &notice.id,
                format!(
                    "it is a notice about task {} of project {}, which is no longer recorded here: record it again (`git coord project add NAME URL`), then reply",
                    about.task, about.project
                ),
            )
        })?;
        let target = format!("#{}:{}", project.name, about.task);
        let message = projects.send_to_task(&project.name, &about.task, on_thread(target))?;
        Replied {
            message,
            project: Some(project.name),
        }
    } else if let Some(task) = &notice.task {
        Replied {
            message: messages.send_as(actor, on_thread(format!("#{task}")), None)?,
            project: None,
        }
    } else {
        return Err(Error::invalid(
            "reply",
            &notice.id,
            "it is a notice from git-coord, which reads no replies: write to whom it names (`git coord send --to NAME TEXT`)",
        ));
    };
    messages.mark(&notice.id, false, "read")?;
    Ok(replied)
}
